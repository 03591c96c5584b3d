//! Small edits spliced into the operator's config text: the file keeps its
//! comments and layout, and a 10,000-service config is not parsed again.
//! Every splice is checked by re-parsing the edited fragment.

use toml::de::{DeTable, DeValue};

use super::{Config, Spans};
use crate::store::Edit;

/// The result of a splice.
#[derive(Debug, PartialEq, Eq)]
pub struct Splice {
    /// The whole new text.
    pub text: String,
    /// Where the change starts.
    pub at: usize,
    /// How many bytes the text grew (negative: shrank).
    pub delta: isize,
}

/// End of the table body that starts at `start` (a `[[...]]` header): the
/// next line that opens a table header, or the end of the text.
fn body_end(text: &str, start: usize) -> usize {
    let mut pos = text[start..].find('\n').map_or(text.len(), |i| start + i + 1);
    while pos < text.len() {
        let line_end = text[pos..].find('\n').map_or(text.len(), |i| pos + i + 1);
        if text[pos..line_end].trim_start().starts_with('[') {
            return pos;
        }
        pos = line_end;
    }
    text.len()
}

/// What a fragment holding one real server's table says about its weight.
struct WeightAt {
    /// The value, when present and an integer.
    value: Option<i64>,
    /// Span of the value in the fragment (None when the key is absent).
    span: Option<std::ops::Range<usize>>,
    /// Number of keys in the table.
    keys: usize,
}

/// Reads the `weight` of the one real server in a fragment.
fn weight_in(fragment: &str, inline: bool) -> Result<WeightAt, String> {
    let bad = |e: String| format!("cannot read the real server's table: {e}");
    if inline {
        let v = DeValue::parse(fragment).map_err(|e| bad(e.to_string()))?;
        let t = v.get_ref().as_table().ok_or_else(|| bad("not an inline table".into()))?;
        let w = t.get("weight");
        Ok(WeightAt {
            value: w.and_then(|w| w.get_ref().as_integer()).and_then(|i| i.as_str().parse().ok()),
            span: w.map(|w| w.span()),
            keys: t.len(),
        })
    } else {
        let doc = DeTable::parse(fragment).map_err(|e| bad(e.to_string()))?;
        let real = doc
            .get_ref()
            .get("services")
            .and_then(|s| s.get_ref().as_table())
            .and_then(|s| s.get("reals"))
            .and_then(|r| r.get_ref().as_array())
            .and_then(|a| a.iter().next())
            .and_then(|r| r.get_ref().as_table())
            .ok_or_else(|| bad("no [[services.reals]] table".into()))?;
        let w = real.get("weight");
        Ok(WeightAt {
            value: w.and_then(|w| w.get_ref().as_integer()).and_then(|i| i.as_str().parse().ok()),
            span: w.map(|w| w.span()),
            keys: real.len(),
        })
    }
}

/// Sets `services[svc].reals[real].weight` to `weight` in `text`.
pub fn set_real_weight(text: &str, spans: &Spans, svc: usize, real: usize, weight: u32) -> Result<Splice, String> {
    let start = *spans.reals.get(svc).and_then(|r| r.get(real)).ok_or("no such real server in the file")? as usize;
    if start >= text.len() {
        return Err("the file changed since it was read".into());
    }
    let inline = text[start..].starts_with('{');
    let end = if inline {
        // The inline table ends at its matching brace (none of a real's
        // values contain braces, but count nesting for `tunnel = { ... }`).
        let mut depth = 0usize;
        let mut end = None;
        let mut in_str = false;
        for (i, c) in text[start..].char_indices() {
            match c {
                '"' => in_str = !in_str,
                '{' if !in_str => depth += 1,
                '}' if !in_str => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(start + i + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        end.ok_or("unterminated inline table")?
    } else {
        if !text[start..].starts_with("[[") {
            return Err("the file changed since it was read".into());
        }
        body_end(text, start)
    };
    let fragment = &text[start..end];
    let WeightAt { span, keys, .. } = weight_in(fragment, inline)?;
    let new_fragment = match span.clone() {
        Some(r) => format!("{}{weight}{}", &fragment[..r.start], &fragment[r.end..]),
        None if inline => {
            let close = fragment.rfind('}').ok_or("unterminated inline table")?;
            let body = fragment[..close].trim_end();
            let sep = if body.ends_with('{') { " " } else { ", " };
            format!("{body}{sep}weight = {weight} {}", &fragment[close..])
        }
        None => {
            // After the header line.
            let nl = fragment.find('\n').map_or(fragment.len(), |i| i + 1);
            let head = &fragment[..nl];
            let head = if head.ends_with('\n') { head.to_string() } else { format!("{head}\n") };
            format!("{head}weight = {weight}\n{}", &fragment[nl..])
        }
    };
    // Check the edit: same table, the new weight.
    let after = weight_in(&new_fragment, inline)?;
    let expect_keys = if span.is_some() { keys } else { keys + 1 };
    if after.value != Some(i64::from(weight)) || after.keys != expect_keys {
        return Err("the edit could not be verified".into());
    }
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..start]);
    out.push_str(&new_fragment);
    out.push_str(&text[end..]);
    Ok(Splice { delta: new_fragment.len() as isize - fragment.len() as isize, at: start, text: out })
}

/// Finds `services[i].reals[j]` from an operator's selectors.
pub fn find_real(cfg: &Config, service: &str, real: &str) -> Result<(usize, usize), String> {
    let sel = service.trim();
    let words: Vec<&str> = sel.split_whitespace().collect();
    let i = cfg
        .services
        .iter()
        .position(|s| s.name.as_deref() == Some(sel))
        .or_else(|| match words.as_slice() {
            ["fwmark", m] | ["fwmark", m, "ipv4"] => cfg.services.iter().position(|s| {
                s.fwmark.map(|x| x.to_string()) == Some(m.to_string()) && s.family() == crate::config::Family::Ipv4
            }),
            ["fwmark", m, "ipv6"] => cfg.services.iter().position(|s| {
                s.fwmark.map(|x| x.to_string()) == Some(m.to_string()) && s.family() == crate::config::Family::Ipv6
            }),
            [addr] | [_, addr] => {
                let proto = if words.len() == 2 {
                    words[0].parse::<crate::config::Protocol>().ok()?
                } else {
                    crate::config::Protocol::Tcp
                };
                let e: crate::config::Endpoint = addr.parse().ok()?;
                cfg.services.iter().position(|s| {
                    let s = crate::fwmark::config::expand(s);
                    s.address == Some(e) && s.protocol == proto
                })
            }
            _ => None,
        })
        .ok_or_else(|| format!("no service `{sel}` in the config (use its name, `tcp ADDR:PORT` or `fwmark N`)"))?;
    let s = &*crate::fwmark::config::expand(&cfg.services[i]);
    let e: crate::config::Endpoint = real.trim().parse()?;
    let sport = s.address.and_then(|a| a.port).unwrap_or(0);
    let j = s
        .reals
        .iter()
        .position(|r| r.address.addr == e.addr && e.port.is_none_or(|p| r.address.port.unwrap_or(sport) == p))
        .ok_or_else(|| format!("no real server {real} in `{sel}`"))?;
    Ok((i, j))
}

/// Applies journalled edits to `text` (whose real-server offsets are `spans`)
/// and to `cfg`: returns the new text and the offsets in it. An edit that no
/// longer matches the config is skipped and described in the warnings.
pub fn apply_edits(text: &str, spans: &Spans, cfg: &mut Config, edits: &[Edit]) -> (String, Spans, Vec<String>) {
    let mut text = text.to_string();
    let mut spans = spans.clone();
    let mut warnings = Vec::new();
    for e in edits {
        match e {
            Edit::Weight { service, real, weight } => {
                let (i, j) = match find_real(cfg, service, real) {
                    Ok(x) => x,
                    Err(why) => {
                        warnings.push(format!("edit of {real} in {service} skipped: {why}"));
                        continue;
                    }
                };
                match set_real_weight(&text, &spans, i, j, *weight) {
                    Ok(sp) => {
                        spans.shift(sp.at, sp.delta);
                        text = sp.text;
                        cfg.services[i].reals[j].weight = *weight;
                    }
                    Err(why) => warnings.push(format!("edit of {real} in {service} skipped: {why}")),
                }
            }
        }
    }
    (text, spans, warnings)
}

#[cfg(test)]
mod tests {
    use super::super::parse_with_spans;
    use super::*;

    const SRC: &str = r#"# my box
[[services]]
name = "web"   # the website
address = "192.0.2.1:80"
[[services.reals]]
address = "10.0.0.1"   # rack 1
weight = 3

[[services.reals]]
address = "10.0.0.2"

[[services]]
address = "192.0.2.2:80"
reals = [ { address = "10.0.0.3", weight = 2 }, {address = "10.0.0.4"}, { address = "10.0.0.5", tunnel = { type = "ipip" }, forwarding = "tun" } ]

[system]
hostname = "lb1"
"#;

    fn check(svc: usize, real: usize, w: u32) -> String {
        let (_, mut spans) = parse_with_spans(SRC, "t").unwrap();
        let sp = set_real_weight(SRC, &spans, svc, real, w).unwrap();
        let (cfg, fresh) = parse_with_spans(&sp.text, "t").unwrap_or_else(|e| panic!("{}\n{e:?}", sp.text));
        assert_eq!(cfg.services[svc].reals[real].weight, w);
        spans.shift(sp.at, sp.delta);
        assert_eq!(spans, fresh, "offsets after the splice must match a fresh parse");
        // Nothing else changed.
        let (orig, _) = parse_with_spans(SRC, "t").unwrap();
        let mut expect = orig.clone();
        expect.services[svc].reals[real].weight = w;
        assert_eq!(cfg, expect);
        sp.text
    }

    #[test]
    fn replaces_an_existing_weight_and_keeps_comments() {
        let t = check(0, 0, 0);
        assert!(t.contains("address = \"10.0.0.1\"   # rack 1\nweight = 0\n"), "{t}");
        assert!(t.contains("# the website"));
    }

    #[test]
    fn inserts_a_missing_weight() {
        let t = check(0, 1, 250);
        assert!(t.contains("[[services.reals]]\nweight = 250\naddress = \"10.0.0.2\""), "{t}");
        check(1, 1, 9);
        check(1, 2, 65535);
    }

    #[test]
    fn edits_inline_tables() {
        let t = check(1, 0, 17);
        assert!(t.contains("{ address = \"10.0.0.3\", weight = 17 }"), "{t}");
    }

    #[test]
    fn stale_offsets_are_refused() {
        let (_, spans) = parse_with_spans(SRC, "t").unwrap();
        assert!(set_real_weight("short", &spans, 0, 0, 1).is_err());
        assert!(set_real_weight(SRC, &spans, 5, 0, 1).is_err());
    }
}
