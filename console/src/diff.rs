//! A small line diff (longest common subsequence) for the apply review.

/// One line of a diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// In both.
    Same(String),
    /// Only in the old text.
    Del(String),
    /// Only in the new text.
    Add(String),
    /// `n` unchanged lines left out.
    Skip(usize),
}

impl Line {
    /// As shown: `  x`, `- x`, `+ x`, `  ... 12 unchanged lines`.
    pub fn text(&self) -> String {
        match self {
            Line::Same(s) => format!("  {s}"),
            Line::Del(s) => format!("- {s}"),
            Line::Add(s) => format!("+ {s}"),
            Line::Skip(n) => format!("  ... {n} unchanged line(s)"),
        }
    }
}

/// The diff of `old` → `new`, unchanged runs cut to `context` lines around changes.
pub fn diff(old: &str, new: &str, context: usize) -> Vec<Line> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let (n, m) = (a.len(), b.len());
    // lcs[i][j] = LCS length of a[i..], b[j..]
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut full = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            full.push(Line::Same(a[i].to_string()));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            full.push(Line::Del(a[i].to_string()));
            i += 1;
        } else {
            full.push(Line::Add(b[j].to_string()));
            j += 1;
        }
    }
    // Keep `context` unchanged lines next to a change; fold the rest.
    let changed: Vec<bool> = full.iter().map(|l| !matches!(l, Line::Same(_))).collect();
    let len = full.len();
    let near = |k: usize| {
        let lo = k.saturating_sub(context);
        let hi = (k + context).min(len.saturating_sub(1));
        (lo..=hi).any(|x| changed[x])
    };
    let mut out = Vec::new();
    let mut skipped = 0;
    for (k, l) in full.into_iter().enumerate() {
        if matches!(l, Line::Same(_)) && !near(k) {
            skipped += 1;
            continue;
        }
        if skipped > 0 {
            out.push(Line::Skip(skipped));
            skipped = 0;
        }
        out.push(l);
    }
    if skipped > 0 {
        out.push(Line::Skip(skipped));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_and_removes() {
        let d = diff("a\nb\nc\nd\ne\nf\n", "a\nb\nX\nd\ne\nf\ng\n", 1);
        let t: Vec<String> = d.iter().map(Line::text).collect();
        assert_eq!(
            t,
            vec!["  ... 1 unchanged line(s)", "  b", "- c", "+ X", "  d", "  ... 1 unchanged line(s)", "  f", "+ g"]
        );
    }

    #[test]
    fn identical_folds() {
        assert_eq!(diff("a\nb\n", "a\nb\n", 2), vec![Line::Skip(2)]);
        assert!(diff("", "", 2).is_empty());
    }
}
