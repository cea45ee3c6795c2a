//! Tests of the subscription and home pages (`super`).

use super::*;
use crate::domain::{Proxies, ResetStrategy, UserStatus};
use minijinja::value::Kwargs;

const NOW: i64 = 1_750_000_000; // 2025-06-15 15:06:40 UTC
const GB: i64 = 1024 * 1024 * 1024;

fn user(name: &str) -> User {
    User {
        id: 7,
        username: name.into(),
        status: UserStatus::Active,
        proxies: Proxies::default(),
        excluded_inbounds: Default::default(),
        used_traffic: 3 * GB / 2,
        lifetime_used_traffic: 5 * GB,
        data_limit: Some(10 * GB),
        data_limit_reset_strategy: ResetStrategy::Month,
        expire: Some(NOW + 12 * 86_400 - 60),
        note: None,
        admin_id: None,
        admin_username: None,
        on_hold_expire_duration: None,
        on_hold_timeout: None,
        auto_delete_in_days: None,
        sub_revoked_at: None,
        sub_updated_at: None,
        sub_last_user_agent: None,
        online_at: None,
        created_at: NOW - 86_400,
        edit_at: None,
        next_plan: None,
        last_status_change: None,
        last_usage_reset_at: None,
    }
}

fn links() -> Vec<(String, String)> {
    vec![
            (
                "DE vless".into(),
                "vless://7d8f9e0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a@203.0.113.7:443?security=reality&type=tcp&sni=example.com&fp=chrome#DE%20vless".into(),
            ),
            (
                "NL trojan".into(),
                "trojan://p%40ss@198.51.100.2:8443?security=tls&type=ws&path=%2Fws&host=cdn.example.com#NL".into(),
            ),
        ]
}

const SUB_URL: &str = "https://panel.example.com/sub/dG9rZW4uMTIz";

fn page(user: &User, links: &[(String, String)], lang: &str, dir: Option<&Path>) -> String {
    render(&PageContext {
        user,
        links,
        subscription_url: SUB_URL,
        accept_language: lang,
        now: NOW,
        templates_dir: dir,
    })
    .unwrap()
}

fn html_escape(s: &str) -> String {
    minijinja::HtmlEscape(s).to_string()
}

#[test]
fn language_follows_accept_language_and_its_q_values() {
    assert_eq!(language(""), Lang::En);
    assert_eq!(language("fa-IR,fa;q=0.9,en-US;q=0.8,en;q=0.7"), Lang::Fa);
    assert_eq!(language("en;q=0.5, ru;q=0.9"), Lang::Ru);
    assert_eq!(language("de-DE,de;q=0.9"), Lang::En);
    assert_eq!(language("de-DE, zh;q=0.4"), Lang::Zh);
    assert_eq!(language("zh-Hans-CN"), Lang::Zh);
    assert_eq!(language("ZH_tw"), Lang::Zh);
    assert_eq!(language("ru;q=0, fa;q=0.1"), Lang::Fa);
    assert_eq!(language("ru;q=0"), Lang::En);
    assert_eq!(language("ru;q=bogus, zh"), Lang::Zh);
    assert_eq!(language("fa ; q = 0.8 , ru ; q=0.8"), Lang::Fa);
    assert_eq!(language("*;q=0.9, fa;q=0.5"), Lang::En);
    assert_eq!(language(",,;;="), Lang::En);
}

#[test]
fn every_language_has_every_string() {
    let table: BTreeMap<String, BTreeMap<String, String>> =
        serde_json::from_str(TRANSLATIONS).unwrap();
    let en = &table["en"];
    let plural_base = |key: &str| {
        ["_one", "_few", "_many", "_other"]
            .iter()
            .find_map(|suffix| key.strip_suffix(suffix))
            .map(str::to_owned)
    };
    for lang in Lang::ALL {
        let strings = &table[lang.code()];
        for key in en.keys() {
            match plural_base(key) {
                // Each count needs its plural form (or `_other`).
                Some(base) => {
                    for n in 0..=200 {
                        let form = format!("{base}_{}", lang.plural(n));
                        assert!(
                            strings.contains_key(&form)
                                || strings.contains_key(&format!("{base}_other")),
                            "{} lacks {form} (n = {n})",
                            lang.code()
                        );
                    }
                }
                None => assert!(strings.contains_key(key), "{} lacks {key}", lang.code()),
            }
        }
        if lang != Lang::En {
            let same: Vec<_> = strings
                .iter()
                .filter(|(k, v)| en.get(*k) == Some(*v))
                .collect();
            assert!(same.is_empty(), "{} untranslated: {same:?}", lang.code());
        }
    }
}

#[test]
fn shows_username_status_usage_and_expiry() {
    let html = page(&user("alice"), &links(), "en", None);
    assert!(html.contains(r#"<html lang="en" dir="ltr">"#));
    assert!(html.contains(">alice</h1>"));
    assert!(html.contains(">Active</span>"));
    assert!(html.contains("1.50 GB"), "used");
    assert!(html.contains("10.00 GB"), "limit");
    assert!(html.contains(r#"style="width: 15%""#));
    assert!(html.contains("15% used"));
    assert!(html.contains("8.50 GB left"));
    assert!(html.contains("Resets every month"));
    assert!(html.contains("Jun 27, 2025"), "expiry date");
    assert!(html.contains("12 days left"));
}

#[test]
fn unlimited_and_never_expiring() {
    let mut u = user("bob");
    u.data_limit = None;
    u.expire = None;
    u.used_traffic = 0;
    let html = page(&u, &links(), "en", None);
    assert!(html.contains("0 B"));
    assert!(html.contains("Unlimited"));
    assert!(!html.contains("role=\"progressbar\""));
    assert!(!html.contains("Resets every"));
    assert!(html.contains(">Never</p>"));
}

#[test]
fn expired_and_on_hold() {
    let mut u = user("carol");
    u.expire = Some(NOW - 10);
    u.status = UserStatus::Expired;
    let html = page(&u, &links(), "ru", None);
    assert!(html.contains("Срок действия истёк"));
    assert!(html.contains(">Истекла</span>"));

    let mut u = user("dave");
    u.expire = None;
    u.status = UserStatus::OnHold;
    u.on_hold_expire_duration = Some(30 * 86_400);
    let html = page(&u, &links(), "ru", None);
    assert!(html.contains("Начнётся при первом подключении"));
    assert!(html.contains("30 дней"));
}

#[test]
fn russian_plurals() {
    let days = |n| tr_count(Lang::Ru, "days_left", n);
    assert_eq!(days(1), "Остался 1 день");
    assert_eq!(days(3), "Осталось 3 дня");
    assert_eq!(days(5), "Осталось 5 дней");
    assert_eq!(days(11), "Осталось 11 дней");
    assert_eq!(days(21), "Остался 21 день");
    assert_eq!(days(112), "Осталось 112 дней");
    assert_eq!(tr_count(Lang::En, "days_left", 1), "1 day left");
    assert_eq!(tr_count(Lang::Zh, "days_left", 1), "剩余 1 天");
}

#[test]
fn username_and_remarks_are_escaped() {
    let evil = "<script>alert(1)</script>";
    let links = vec![(
        "<img src=x onerror=alert(2)>".to_owned(),
        "vless://id@h:1?a=1&b=\"2\"#<b>".to_owned(),
    )];
    let html = page(&user(evil), &links, "en", None);
    assert!(!html.contains("<script>alert(1)"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
    assert!(!html.contains("<img src=x"));
    assert!(!html.contains("\"2\""));
    assert!(html.contains(&html_escape(&links[0].1)));
    // Only the page's own script tag.
    assert_eq!(html.matches("<script").count(), 1);
}

#[test]
fn every_link_with_its_qr_code_and_copy_button() {
    let links = links();
    let html = page(&user("alice"), &links, "en", None);
    for (remark, url) in &links {
        let url = html_escape(url);
        assert!(html.contains(&format!(">{}</h3>", html_escape(remark))));
        assert!(html.contains(&format!(r#"<code class="link">{url}</code>"#)));
        assert!(html.contains(&format!(r#"data-copy="{url}""#)));
    }
    for (_, url) in &links {
        let svg = qr_svg(url).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("viewBox"));
        assert!(html.contains(&svg), "QR of {url}");
    }
    assert!(
        html.contains(&qr_svg(SUB_URL).unwrap()),
        "QR of the subscription"
    );
    assert!(html.contains(&format!(r#"data-copy="{}""#, html_escape(SUB_URL))));
    assert_eq!(html.matches("<svg").count(), links.len() + 1);
    assert!(html.contains("navigator.clipboard.writeText"));
    assert!(html.contains("document.execCommand(\"copy\")"));
}

#[test]
fn import_buttons_use_each_apps_scheme() {
    let apps = import_apps("https://p.example/sub/a b", "al ice");
    let href = |id: &str| {
        apps.iter()
            .find(|a| a.id == id)
            .and_then(|a| a.href.clone())
            .unwrap_or_default()
    };
    let enc = "https%3A%2F%2Fp.example%2Fsub%2Fa%20b";
    assert_eq!(
        href("v2rayng"),
        format!("v2rayng://install-sub?url={enc}#al%20ice")
    );
    assert_eq!(
        href("sing-box"),
        format!("sing-box://import-remote-profile?url={enc}#al%20ice")
    );
    assert_eq!(
        href("clash-meta"),
        format!("clash://install-config?url={enc}&name=al%20ice")
    );
    assert_eq!(
        href("hiddify"),
        "hiddify://import/https://p.example/sub/a b#al%20ice"
    );
    assert_eq!(
        href("streisand"),
        "streisand://import/https://p.example/sub/a b#al%20ice"
    );
    assert_eq!(href("happ"), "happ://add/https://p.example/sub/a b");
    assert_eq!(
        href("shadowrocket"),
        format!(
            "sub://{}#al%20ice",
            STANDARD.encode("https://p.example/sub/a b")
        )
    );
    assert!(apps.iter().any(|a| a.id == "v2rayn" && a.href.is_none()));

    let html = page(&user("alice"), &links(), "en", None);
    for app in import_apps(SUB_URL, "alice") {
        match app.href {
            Some(href) => assert!(html.contains(&format!(r#"href="{}""#, html_escape(&href)))),
            None => assert!(html.contains(&format!(r#"data-app="{}""#, app.id))),
        }
    }
    assert!(html.contains("clash:&#x2f;&#x2f;install-config?url=https%3A%2F%2F"));
    assert!(html.contains("&amp;name=alice"));
}

#[test]
fn persian_is_right_to_left_with_persian_digits_and_calendar() {
    let html = page(&user("alice"), &links(), "fa-IR,fa;q=0.9", None);
    assert!(html.contains(r#"<html lang="fa" dir="rtl">"#));
    assert!(html.contains("حجم مصرفی"));
    assert!(html.contains("۱٫۵۰ GB"));
    assert!(html.contains("۱۲ روز باقی‌مانده"));
    // 2025-06-27 is 6 Tir 1404.
    assert!(html.contains("۶ تیر ۱۴۰۴"));
    assert!(html.contains("2025-06-27"));
    // Links stay left-to-right and in ASCII.
    assert!(html.contains(&html_escape(&links()[0].1)));
    for lang in ["en", "ru", "zh-CN"] {
        assert!(page(&user("a"), &links(), lang, None).contains(r#"dir="ltr""#));
    }
}

#[test]
fn jalali_dates() {
    assert_eq!(jalali(2025, 3, 21), (1404, 1, 1));
    assert_eq!(jalali(2024, 3, 20), (1403, 1, 1));
    assert_eq!(jalali(2025, 3, 20), (1403, 12, 30));
    assert_eq!(jalali(2000, 1, 1), (1378, 10, 11));
    assert_eq!(jalali(2025, 6, 27), (1404, 4, 6));
}

#[test]
fn russian_and_chinese_pages() {
    let ru = page(&user("alice"), &links(), "ru-RU,ru;q=0.9,en;q=0.5", None);
    assert!(ru.contains(r#"<html lang="ru" dir="ltr">"#));
    assert!(ru.contains("Осталось 12 дней"));
    assert!(ru.contains("27 июня 2025"));
    assert!(ru.contains("Копировать"));
    let zh = page(&user("alice"), &links(), "zh-CN,zh;q=0.9", None);
    assert!(zh.contains(r#"<html lang="zh" dir="ltr">"#));
    assert!(zh.contains("剩余 12 天"));
    assert!(zh.contains("2025年6月27日"));
    assert!(zh.contains("复制"));
}

#[test]
fn no_external_resources() {
    for source in [BUILTIN_SUBSCRIPTION, BUILTIN_HOME] {
        for bad in [
            "http://",
            "https://",
            "@import",
            "@font-face",
            "src=\"/",
            "url(",
        ] {
            assert!(!source.contains(bad), "{bad} in a built-in template");
        }
    }
    let html = page(&user("alice"), &[], "en", None);
    assert!(html.contains("No servers are available right now."));
    // The only absolute URLs are the subscription's own.
    let others = html
        .match_indices("https://")
        .filter(|(i, _)| !html[*i..].starts_with(SUB_URL))
        .count();
    assert_eq!(others, 0);
}

#[test]
fn custom_marzban_template_overrides_the_page() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("subscription")).unwrap();
    std::fs::write(
            dir.path().join(SUBSCRIPTION_TEMPLATE),
            r#"<h1>{{ user.username }}</h1>
<p class="{% if user.status.value == 'active' %}active{% endif %}">{{ user.status }}</p>
<p>{% if not user.data_limit %}∞{% else %}{{ user.data_limit | filesizeformat }}{% endif %}</p>
<p>{{ user.used_traffic | filesizeformat }}{% if user.data_limit_reset_strategy != 'no_reset' %} ({{ user.data_limit_reset_strategy.value }}){% endif %}</p>
{% set current_timestamp = now().timestamp() %}
{% set remaining_days = ((user.expire - current_timestamp) // (24 * 3600)) %}
<p>{{ user.expire | datetime }} ({{ remaining_days | int }} days)</p>
<ul>{% for link in user.links %}<li data-link="{{ link }}">{{ link }}</li>{% endfor %}</ul>
<a href="{{ user.subscription_url }}">sub</a>"#,
        )
        .unwrap();
    let evil = user("<b>eve</b>");
    let html = page(&evil, &links(), "fa", Some(dir.path()));
    assert!(
        html.contains("<h1>&lt;b&gt;eve&lt;&#x2f;b&gt;</h1>"),
        "{html}"
    );
    assert!(html.contains(r#"<p class="active">active</p>"#));
    assert!(html.contains("<p>10.7 GB</p>"));
    assert!(html.contains("<p>1.6 GB (month)</p>"));
    assert!(html.contains("(11 days)"));
    assert!(html.contains("2025-06-27"));
    for (_, link) in links() {
        assert!(html.contains(&format!(
            "<li data-link=\"{0}\">{0}</li>",
            html_escape(&link)
        )));
    }
    assert!(html.contains(&format!(r#"<a href="{}">sub</a>"#, html_escape(SUB_URL))));

    // A directory without the file: the built-in page.
    let empty = tempfile::tempdir().unwrap();
    let html = page(&user("alice"), &links(), "en", Some(empty.path()));
    assert!(html.contains("Subscription link"));
}

#[test]
fn custom_template_can_include_its_own_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("subscription")).unwrap();
    std::fs::write(
        dir.path().join("subscription/base.html"),
        "<main>{% block body %}{% endblock %}</main>",
    )
    .unwrap();
    std::fs::write(
            dir.path().join(SUBSCRIPTION_TEMPLATE),
            r#"{% extends "subscription/base.html" %}{% block body %}{{ user.username }} {{ links | length }}{% endblock %}"#,
        )
        .unwrap();
    let html = page(&user("alice"), &links(), "en", Some(dir.path()));
    assert_eq!(html, "<main>alice 2</main>");
}

#[test]
fn broken_custom_template_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("subscription")).unwrap();
    let path = dir.path().join(SUBSCRIPTION_TEMPLATE);
    std::fs::write(&path, "<p>\n{% for link in user.links %}\n{{ link }\n").unwrap();
    let err = render(&PageContext {
        user: &user("alice"),
        links: &links(),
        subscription_url: SUB_URL,
        accept_language: "",
        now: NOW,
        templates_dir: Some(dir.path()),
    })
    .unwrap_err();
    let PageError::Template { template, message } = &err;
    assert_eq!(template, &path.display().to_string());
    assert!(message.contains("syntax error"), "{message}");
    assert!(message.contains("subscription/index.html:3"), "{message}");
    assert!(err.to_string().contains(&path.display().to_string()));

    // A runtime error is reported the same way.
    std::fs::write(&path, "{{ user.username.nope.deeper }}").unwrap();
    let err = render(&PageContext {
        user: &user("alice"),
        links: &links(),
        subscription_url: SUB_URL,
        accept_language: "",
        now: NOW,
        templates_dir: Some(dir.path()),
    })
    .unwrap_err();
    assert!(err.to_string().contains("subscription/index.html"), "{err}");
}

#[test]
fn home_page_builtin_and_custom() {
    let html = render_home(None).unwrap();
    assert!(html.contains("Nexpoint is running"));
    assert!(html.contains("/sub/&lt;token&gt;"));

    let dir = tempfile::tempdir().unwrap();
    assert!(
        render_home(Some(dir.path()))
            .unwrap()
            .contains("Nexpoint is running")
    );
    std::fs::create_dir_all(dir.path().join("home")).unwrap();
    std::fs::write(
        dir.path().join(HOME_TEMPLATE),
        "<h1>Welcome {{ now().year }}</h1>",
    )
    .unwrap();
    let html = render_home(Some(dir.path())).unwrap();
    assert!(html.starts_with("<h1>Welcome 20"), "{html}");

    std::fs::write(dir.path().join(HOME_TEMPLATE), "{% if %}").unwrap();
    let err = render_home(Some(dir.path())).unwrap_err();
    assert!(err.to_string().contains("home/index.html"), "{err}");
}

#[test]
fn filesizeformat_matches_jinja2() {
    let f = |v: i64, binary: bool| {
        filesizeformat(
            Value::from(v),
            Some(binary),
            Kwargs::from_iter(std::iter::empty::<(&str, Value)>()),
        )
        .unwrap()
    };
    assert_eq!(f(1, false), "1 Byte");
    assert_eq!(f(999, false), "999 Bytes");
    assert_eq!(f(1000, false), "1.0 kB");
    assert_eq!(f(1_500_000, false), "1.5 MB");
    assert_eq!(f(10 * GB, false), "10.7 GB");
    assert_eq!(f(10 * GB, true), "10.0 GiB");
}
