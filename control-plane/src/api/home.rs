use axum::response::Html;

/// A landing page so a browser pointed at the server sees it is up and where
/// to go next (the dashboard arrives in its own release).
pub async fn page() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">",
        "<title>Nexpoint</title><style>body{font-family:system-ui,sans-serif;max-width:40rem;",
        "margin:3rem auto;padding:0 1rem;line-height:1.5}code{background:#eee;padding:0 .3em}</style>",
        "</head><body><h1>Nexpoint control plane</h1>",
        "<p>The server is running (version ",
        env!("CARGO_PKG_VERSION"),
        ").</p><p>The REST API is served under <code>/api</code> in Marzban's shapes: ",
        "obtain a token with <code>POST /api/admin/token</code>, then manage users and nodes. ",
        "Subscribers import <code>/sub/&lt;token&gt;</code> into their proxy app.</p>",
        "</body></html>"
    ))
}
