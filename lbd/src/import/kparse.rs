//! keepalived.conf syntax → a tree of [`Node`]s with file:line.
//!
//! Follows keepalived.conf(5): keywords in blocks delimited by `{` and `}`;
//! comments start with `#` or `!` anywhere outside quotes; strings quoted
//! with `"` or `'` (quotes removed, inner whitespace kept, shell escapes);
//! `include FILE` (and `includer/m/w/b/a`) with wildcards and csh braces,
//! relative to the including file's directory; `$NAME=value` definitions
//! and `$NAME`/`${NAME}` substitution. Lines starting with `@` (conditional
//! configuration) are reported, not evaluated.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Fs, Kind, Loc, Report, glob};

/// One keyword line, with its block when it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The first word.
    pub key: String,
    /// The other words.
    pub args: Vec<String>,
    /// The `{ ... }` block that follows, if any.
    pub block: Option<Vec<Node>>,
    /// Where the keyword is.
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
    Eol,
}

/// Deepest include nesting and block nesting accepted.
const MAX_INCLUDE_DEPTH: usize = 16;
const MAX_BLOCK_DEPTH: usize = 64;
/// Longest line after substitution.
const MAX_LINE: usize = 64 * 1024;
/// Most tokens in total (include loops, runaway globs).
const MAX_TOKENS: usize = 4_000_000;
/// Most files read through includes in one import. A file that includes
/// itself twice doubles at each of the 16 levels (65,536 reads and seconds
/// of work before the token bound stops it; found by `lbd/fuzz`).
const MAX_INCLUDED_FILES: usize = 1024;

struct Lexer<'a> {
    fs: &'a dyn Fs,
    /// Files read through includes so far.
    included: usize,
    /// The nesting error was reported (once: a loop hits it at every leaf).
    too_deep: bool,
    /// The files being read, outermost first: including one of them again
    /// is a loop.
    stack: Vec<PathBuf>,
    vars: HashMap<String, String>,
    toks: Vec<(Tok, Loc)>,
    report: &'a mut Report,
}

/// Parses `path` (and what it includes) into nodes. Errors and skipped
/// lines go to `report`.
pub fn parse_file(fs: &dyn Fs, path: &Path, report: &mut Report) -> Vec<Node> {
    let mut lx =
        Lexer { fs, included: 0, too_deep: false, stack: Vec::new(), vars: HashMap::new(), toks: Vec::new(), report };
    let display = path.display().to_string();
    lx.stack.push(path.to_path_buf());
    match fs.read(path) {
        Ok(text) => lx.file(&text, path, &display, 0),
        Err(e) => lx.report.error(&Loc { file: display, line: 0 }, "file", format!("cannot read: {e}")),
    }
    build(lx.toks, report)
}

/// Parses text as if it were the file `name` (includes relative to `dir`).
pub fn parse_text(fs: &dyn Fs, text: &str, name: &str, report: &mut Report) -> Vec<Node> {
    let mut lx =
        Lexer { fs, included: 0, too_deep: false, stack: Vec::new(), vars: HashMap::new(), toks: Vec::new(), report };
    lx.stack.push(PathBuf::from(name));
    lx.file(text, Path::new(name), name, 0);
    build(lx.toks, report)
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}
fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Lexer<'_> {
    fn file(&mut self, text: &str, path: &Path, display: &str, depth: usize) {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let ddir = Path::new(display).parent().map(Path::to_path_buf).unwrap_or_default();
        let mut lines = text.lines().enumerate();
        while let Some((n, raw)) = lines.next() {
            let loc = Loc { file: display.to_string(), line: n + 1 };
            let mut line = raw.to_string();
            // Definitions: `$NAME=value`, continued with a trailing backslash.
            let t = line.trim_start();
            if let Some(def) = t.strip_prefix('$')
                && let Some((name, value)) = def.split_once('=')
                && name.trim().chars().next().is_some_and(is_ident_start)
                && name.trim().chars().all(is_ident)
            {
                let mut value = value.trim().to_string();
                while value.ends_with('\\') {
                    value.pop();
                    match lines.next() {
                        Some((_, more)) => value.push_str(more.trim()),
                        None => break,
                    }
                    if value.len() > MAX_LINE {
                        break;
                    }
                }
                let value = strip_comment(&value);
                match self.substitute(value.trim(), &loc) {
                    Some(v) => {
                        self.vars.insert(name.trim().to_string(), v);
                    }
                    None => continue,
                }
                continue;
            }
            if t.starts_with('@') {
                self.report.push(
                    &loc,
                    Kind::NotImported,
                    t.split_whitespace().next().unwrap_or("@"),
                    "conditional configuration is not evaluated by the import (it depends on keepalived's -i config id); \
                     keep the lines this director needs without the @ prefix and import again",
                );
                continue;
            }
            line = strip_comment(&line);
            if line.contains('$') {
                match self.substitute(&line, &loc) {
                    Some(l) => line = l,
                    None => continue,
                }
            }
            let first = line.split_whitespace().next().unwrap_or("");
            let include = matches!(first, "include" | "includer" | "includem" | "includew" | "includeb" | "includea");
            let words = match lex_line(&line, include) {
                Ok(w) => w,
                Err(e) => {
                    self.report.error(&loc, "syntax", e);
                    continue;
                }
            };
            // include handling.
            if include && let Some(Tok::Word(w)) = words.first() {
                let kw = w.clone();
                let Some(Tok::Word(pat)) = words.get(1) else {
                    self.report.error(&loc, kw, "needs a file name");
                    continue;
                };
                if words.len() > 2 {
                    self.report.error(&loc, kw, "takes one file name (quote a name with spaces)");
                    continue;
                }
                if let Some(why) = self.fs.no_includes() {
                    self.report.error(&loc, kw, format!("`{pat}`: {why}"));
                    continue;
                }
                if depth >= MAX_INCLUDE_DEPTH {
                    if !self.too_deep {
                        self.too_deep = true;
                        self.report.error(&loc, kw, format!("includes nest deeper than {MAX_INCLUDE_DEPTH} (a loop?)"));
                    }
                    continue;
                }
                let files = glob(self.fs, &dir, pat);
                if files.is_empty() {
                    let kind = if kw == "includer" { Kind::Note } else { Kind::Error };
                    self.report.push(&loc, kind, kw.clone(), format!("`{pat}` matches no readable file"));
                }
                for f in files {
                    if self.included >= MAX_INCLUDED_FILES {
                        // Said once; every level being unwound stops too.
                        if self.included == MAX_INCLUDED_FILES {
                            self.report.error(
                                &loc,
                                kw.clone(),
                                format!("more than {MAX_INCLUDED_FILES} files included in all (the same files included over and over?)"),
                            );
                            self.included += 1;
                        }
                        return;
                    }
                    self.included += 1;
                    let rel = f.strip_prefix(&dir).map(Path::to_path_buf).unwrap_or_else(|_| f.clone());
                    let shown: PathBuf = if f.is_absolute() { f.clone() } else { ddir.join(rel) };
                    if self.stack.contains(&f) {
                        // keepalived would recurse until its depth limit, reading
                        // the file 2^depth times when it includes itself twice.
                        self.report.error(
                            &loc,
                            kw.clone(),
                            format!("`{}` is already being read: an include loop (not followed)", shown.display()),
                        );
                        continue;
                    }
                    match self.fs.read(&f) {
                        Ok(text) => {
                            self.stack.push(f.clone());
                            self.file(&text, &f, &shown.display().to_string(), depth + 1);
                            self.stack.pop();
                        }
                        Err(e) => self.report.error(&loc, kw.clone(), format!("{}: {e}", f.display())),
                    }
                    if self.toks.len() > MAX_TOKENS {
                        self.report.error(&loc, kw.clone(), "the configuration is too large");
                        return;
                    }
                }
                continue;
            }
            for w in words {
                self.toks.push((w, loc.clone()));
            }
            self.toks.push((Tok::Eol, loc));
            if self.toks.len() > MAX_TOKENS {
                self.report.error(&Loc { file: display.to_string(), line: n + 1 }, "file", "too large");
                return;
            }
        }
    }

    /// `$NAME` and `${NAME}` → their values. Unknown names are left as
    /// written (as keepalived does) and reported.
    fn substitute(&mut self, line: &str, loc: &Loc) -> Option<String> {
        let c: Vec<char> = line.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        while i < c.len() {
            if c[i] == '$' {
                let (name, end) =
                    super::var_ref(&c, i, |ch, first| if first { is_ident_start(ch) } else { is_ident(ch) });
                if !name.is_empty() {
                    match self.vars.get(&name) {
                        Some(v) => out.push_str(v),
                        None => {
                            self.report.push(
                                loc,
                                Kind::Note,
                                format!("${name}"),
                                "not defined before this line; left as written",
                            );
                            out.extend(&c[i..end]);
                        }
                    }
                    i = end;
                    if out.len() > MAX_LINE {
                        self.report.error(loc, "substitution", format!("the line grows beyond {MAX_LINE} bytes"));
                        return None;
                    }
                    continue;
                }
            }
            out.push(c[i]);
            i += 1;
        }
        Some(out)
    }
}

/// Drops a comment (`#` or `!` outside quotes).
fn strip_comment(s: &str) -> String {
    let mut q: Option<char> = None;
    let mut esc = false;
    for (i, c) in s.char_indices() {
        if esc {
            esc = false;
            continue;
        }
        match (q, c) {
            (Some(_), '\\') => esc = true,
            (Some(x), c) if c == x => q = None,
            (None, '"' | '\'') => q = Some(c),
            (None, '#' | '!') => return s[..i].to_string(),
            _ => {}
        }
    }
    s.to_string()
}

/// Splits a line into words, `{` and `}` (plain characters in an include
/// line, where they are csh brace expressions).
fn lex_line(line: &str, braces_are_words: bool) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let flush = |cur: &mut String, in_word: &mut bool, out: &mut Vec<Tok>| {
        if *in_word {
            out.push(Tok::Word(std::mem::take(cur)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' | '!' => break,
            '{' | '}' if braces_are_words => {
                in_word = true;
                cur.push(c);
            }
            '{' => {
                flush(&mut cur, &mut in_word, &mut out);
                out.push(Tok::Open);
            }
            '}' => {
                flush(&mut cur, &mut in_word, &mut out);
                out.push(Tok::Close);
            }
            '"' | '\'' => {
                in_word = true;
                let q = c;
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated {q}quoted string")),
                        Some(x) if x == q => break,
                        Some('\\') => match chars.next() {
                            None => return Err(format!("unterminated {q}quoted string")),
                            Some(e) => cur.push(unescape(e, &mut chars)),
                        },
                        Some(x) => cur.push(x),
                    }
                }
            }
            c if c.is_whitespace() => flush(&mut cur, &mut in_word, &mut out),
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    flush(&mut cur, &mut in_word, &mut out);
    Ok(out)
}

fn unescape(e: char, chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> char {
    let digits = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, radix: u32, max: usize, first: Option<char>| {
        let mut v: u32 = first.and_then(|c| c.to_digit(radix)).unwrap_or(0);
        let mut n = usize::from(first.is_some());
        while n < max {
            match chars.peek().and_then(|c| c.to_digit(radix)) {
                Some(d) => {
                    v = v * radix + d;
                    chars.next();
                    n += 1;
                }
                None => break,
            }
        }
        char::from_u32(v & 0xff).unwrap_or('?')
    };
    match e {
        'a' => '\x07',
        'b' => '\x08',
        'E' => '\x1b',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        'x' => digits(chars, 16, 2, None),
        '0'..='7' => digits(chars, 8, 3, Some(e)),
        'c' => chars.next().map(|c| char::from((c as u8) & 0x1f)).unwrap_or('c'),
        other => other,
    }
}

/// Tokens → tree. `{` may end the keyword's line or stand on the next line.
fn build(toks: Vec<(Tok, Loc)>, report: &mut Report) -> Vec<Node> {
    let mut i = 0;
    let mut opened: Vec<Loc> = Vec::new();
    let nodes = block(&toks, &mut i, &mut opened, report);
    if let Some(l) = opened.last() {
        report.error(l, "{", "block is never closed (missing `}`)");
    }
    nodes
}

fn block(toks: &[(Tok, Loc)], i: &mut usize, opened: &mut Vec<Loc>, report: &mut Report) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::new();
    while *i < toks.len() {
        let (t, loc) = &toks[*i];
        match t {
            Tok::Eol => *i += 1,
            Tok::Close => {
                *i += 1;
                if opened.pop().is_none() {
                    report.error(loc, "}", "closes a block that was never opened");
                    continue;
                }
                return out;
            }
            Tok::Open => {
                // A block with no keyword: attach to the previous keyword
                // when it has none yet (keyword on one line, `{` on the next).
                *i += 1;
                opened.push(loc.clone());
                let depth_ok = opened.len() <= MAX_BLOCK_DEPTH;
                let children = if depth_ok {
                    block(toks, i, opened, report)
                } else {
                    report.error(loc, "{", format!("blocks nest deeper than {MAX_BLOCK_DEPTH}"));
                    skip_block(toks, i, opened);
                    Vec::new()
                };
                match out.last_mut() {
                    Some(prev) if prev.block.is_none() => prev.block = Some(children),
                    _ => report.error(loc, "{", "a block needs a keyword before it"),
                }
            }
            Tok::Word(w) => {
                let mut node = Node { key: w.clone(), args: Vec::new(), block: None, loc: loc.clone() };
                *i += 1;
                while let Some((Tok::Word(a), _)) = toks.get(*i) {
                    node.args.push(a.clone());
                    *i += 1;
                }
                if let Some((Tok::Open, oloc)) = toks.get(*i) {
                    *i += 1;
                    opened.push(oloc.clone());
                    if opened.len() <= MAX_BLOCK_DEPTH {
                        node.block = Some(block(toks, i, opened, report));
                    } else {
                        report.error(oloc, "{", format!("blocks nest deeper than {MAX_BLOCK_DEPTH}"));
                        skip_block(toks, i, opened);
                        node.block = Some(Vec::new());
                    }
                }
                out.push(node);
            }
        }
    }
    out
}

/// Skips to the end of the block just opened (iteratively, no recursion).
fn skip_block(toks: &[(Tok, Loc)], i: &mut usize, opened: &mut Vec<Loc>) {
    let target = opened.len() - 1;
    while *i < toks.len() && opened.len() > target {
        match toks[*i].0 {
            Tok::Open => opened.push(toks[*i].1.clone()),
            Tok::Close => {
                opened.pop();
            }
            _ => {}
        }
        *i += 1;
    }
}
