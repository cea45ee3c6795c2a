//! A parser for the Prometheus text format, enough to read the daemons'
//! `/metrics` back: samples with their labels and values.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample in `text`; fails on a line that is not one.
pub fn parse(text: &str) -> Result<Vec<Sample>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| parse_line(l).with_context(|| format!("metrics line {l:?}")))
        .collect()
}

fn parse_line(line: &str) -> Result<Sample> {
    let name_end = line
        .find(['{', ' '])
        .context("no value after the metric name")?;
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        loop {
            let (start, c) = chars.next().context("unterminated labels")?;
            if c == '}' {
                rest = &body[start + 1..];
                break;
            }
            if c == ',' {
                continue;
            }
            let eq = body[start..].find('=').context("label without =")? + start;
            let key = body[start..eq].to_owned();
            while chars.next().is_some_and(|(i, _)| i < eq + 1) {}
            let mut value = String::new();
            loop {
                match chars.next().context("unterminated label value")? {
                    (_, '"') => break,
                    (_, '\\') => match chars.next().context("dangling escape")?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    (_, other) => value.push(other),
                }
            }
            labels.insert(key, value);
        }
    }
    let value = rest.split_whitespace().next().context("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().with_context(|| format!("value {v:?}"))?,
    };
    if name.is_empty() {
        bail!("empty metric name");
    }
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// The value of the sample `name` whose labels include `labels`.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
        .map(|s| s.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_with_braces_commas_and_escapes() {
        let text = "# HELP x y\n\
            a_count{route=\"/api/user/{username}\",status=\"200\"} 3\n\
            b{v=\"q\\\"x,y\"} +Inf\n\
            c 1.5\n";
        let samples = parse(text).unwrap();
        assert_eq!(
            value(&samples, "a_count", &[("route", "/api/user/{username}")]),
            Some(3.0)
        );
        assert_eq!(samples[1].labels["v"], "q\"x,y");
        assert_eq!(value(&samples, "b", &[]), Some(f64::INFINITY));
        assert_eq!(value(&samples, "c", &[]), Some(1.5));
    }
}
