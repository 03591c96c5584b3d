//! A small regular-expression matcher for HTTP body checks (the box links no
//! C library, so no PCRE as keepalived has). It compiles to a Thompson NFA
//! and simulates it, so matching is linear in the body whatever the pattern
//! (no catastrophic backtracking on a hostile page).
//!
//! Syntax: literals, `.` (not newline), `^`, `$`, `[...]` / `[^...]` with
//! ranges and `\d \w \s` inside, `\d \w \s \D \W \S`, `\n \t \r`, escaped
//! punctuation, groups `(...)` and `(?:...)`, `|`, `*`, `+`, `?`, `{m}`,
//! `{m,}`, `{m,n}` (lazy `?` suffixes are accepted; only "is there a match"
//! is asked). The match is unanchored unless `^`/`$` say otherwise.

use std::fmt;

#[derive(Clone, Debug)]
enum Node {
    Char(char),
    Any,
    Class(Vec<(char, char)>, bool),
    Bol,
    Eol,
    Group(Vec<Vec<Node>>),
    Repeat(Box<Node>, u32, Option<u32>),
}

#[derive(Clone, Debug)]
enum Inst {
    Char(char),
    Any,
    Class(usize),
    Bol,
    Eol,
    Split(usize, usize),
    Jmp(usize),
    Match,
}

/// A compiled pattern.
#[derive(Clone, Debug)]
pub struct Regex {
    prog: Vec<Inst>,
    classes: Vec<(Vec<(char, char)>, bool)>,
}

/// Why a pattern is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const MAX_PROG: usize = 20_000;

struct Parser<'a> {
    s: &'a [char],
    i: usize,
}

fn perl_class(c: char) -> Option<(Vec<(char, char)>, bool)> {
    let digit = vec![('0', '9')];
    let word = vec![('0', '9'), ('A', 'Z'), ('a', 'z'), ('_', '_')];
    let space = vec![(' ', ' '), ('\t', '\r')];
    Some(match c {
        'd' => (digit, false),
        'D' => (digit, true),
        'w' => (word, false),
        'W' => (word, true),
        's' => (space, false),
        'S' => (space, true),
        _ => return None,
    })
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }
    fn err<T>(&self, m: &str) -> Result<T, Error> {
        Err(Error(format!("{m} at offset {}", self.i)))
    }
    fn alt(&mut self, depth: usize) -> Result<Vec<Vec<Node>>, Error> {
        if depth > 50 {
            return self.err("groups nested too deep");
        }
        let mut alts = vec![self.seq(depth)?];
        while self.peek() == Some('|') {
            self.i += 1;
            alts.push(self.seq(depth)?);
        }
        Ok(alts)
    }
    fn seq(&mut self, depth: usize) -> Result<Vec<Node>, Error> {
        let mut v = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom(depth)?;
            v.push(self.quant(atom)?);
        }
        Ok(v)
    }
    fn escape(&mut self) -> Result<Node, Error> {
        let Some(c) = self.peek() else { return self.err("trailing backslash") };
        self.i += 1;
        if let Some((r, neg)) = perl_class(c) {
            return Ok(Node::Class(r, neg));
        }
        Ok(Node::Char(match c {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            c if c.is_ascii_punctuation() || c == ' ' => c,
            _ => return self.err(&format!("unsupported escape \\{c}")),
        }))
    }
    fn atom(&mut self, depth: usize) -> Result<Node, Error> {
        let c = self.peek().unwrap_or('\0');
        self.i += 1;
        match c {
            '(' => {
                if self.s.get(self.i..self.i + 2) == Some(&['?', ':']) {
                    self.i += 2;
                } else if self.peek() == Some('?') {
                    return self.err("unsupported group kind");
                }
                let a = self.alt(depth + 1)?;
                if self.peek() != Some(')') {
                    return self.err("missing )");
                }
                self.i += 1;
                Ok(Node::Group(a))
            }
            '[' => self.class(),
            '.' => Ok(Node::Any),
            '^' => Ok(Node::Bol),
            '$' => Ok(Node::Eol),
            '\\' => self.escape(),
            '*' | '+' | '?' | '{' => {
                self.i -= 1;
                self.err("nothing to repeat")
            }
            c => Ok(Node::Char(c)),
        }
    }
    fn class(&mut self) -> Result<Node, Error> {
        let neg = self.peek() == Some('^');
        if neg {
            self.i += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else { return self.err("missing ]") };
            self.i += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = if c == '\\' {
                let Some(e) = self.peek() else { return self.err("trailing backslash") };
                self.i += 1;
                if let Some((r, false)) = perl_class(e) {
                    ranges.extend(r);
                    continue;
                }
                match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    e => e,
                }
            } else {
                c
            };
            if self.peek() == Some('-') && self.s.get(self.i + 1).is_some_and(|x| *x != ']') {
                self.i += 1;
                let hi = self.peek().unwrap_or(lo);
                self.i += 1;
                if hi < lo {
                    return self.err("bad range");
                }
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        Ok(Node::Class(ranges, neg))
    }
    fn num(&mut self) -> Option<u32> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.s[start..self.i].iter().collect::<String>().parse().ok()
    }
    fn quant(&mut self, mut atom: Node) -> Result<Node, Error> {
        loop {
            let (min, max) = match self.peek() {
                Some('*') => (0, None),
                Some('+') => (1, None),
                Some('?') => (0, Some(1)),
                Some('{') => {
                    let save = self.i;
                    self.i += 1;
                    let Some(m) = self.num() else {
                        self.i = save;
                        return self.err("bad {m,n}");
                    };
                    let n = if self.peek() == Some(',') {
                        self.i += 1;
                        if self.peek() == Some('}') { None } else { Some(self.num().unwrap_or(0)) }
                    } else {
                        Some(m)
                    };
                    if self.peek() != Some('}') || n.is_some_and(|n| n < m) || m > 1000 || n.is_some_and(|n| n > 1000) {
                        return self.err("bad {m,n}");
                    }
                    (m, n)
                }
                _ => return Ok(atom),
            };
            self.i += 1;
            if self.peek() == Some('?') {
                self.i += 1; // lazy: same answer to "is there a match"
            }
            if matches!(atom, Node::Bol | Node::Eol) {
                return self.err("nothing to repeat");
            }
            atom = Node::Repeat(Box::new(atom), min, max);
        }
    }
}

struct Compiler {
    prog: Vec<Inst>,
    classes: Vec<(Vec<(char, char)>, bool)>,
}

impl Compiler {
    fn emit(&mut self, i: Inst) -> Result<usize, Error> {
        if self.prog.len() >= MAX_PROG {
            return Err(Error("pattern too large".into()));
        }
        self.prog.push(i);
        Ok(self.prog.len() - 1)
    }
    fn alt(&mut self, alts: &[Vec<Node>]) -> Result<(), Error> {
        let mut jumps = Vec::new();
        for (k, seq) in alts.iter().enumerate() {
            if k + 1 < alts.len() {
                let split = self.emit(Inst::Split(0, 0))?;
                for n in seq {
                    self.node(n)?;
                }
                jumps.push(self.emit(Inst::Jmp(0))?);
                let next = self.prog.len();
                self.prog[split] = Inst::Split(split + 1, next);
            } else {
                for n in seq {
                    self.node(n)?;
                }
            }
        }
        let end = self.prog.len();
        for j in jumps {
            self.prog[j] = Inst::Jmp(end);
        }
        Ok(())
    }
    fn node(&mut self, n: &Node) -> Result<(), Error> {
        match n {
            Node::Char(c) => {
                self.emit(Inst::Char(*c))?;
            }
            Node::Any => {
                self.emit(Inst::Any)?;
            }
            Node::Class(r, neg) => {
                self.classes.push((r.clone(), *neg));
                self.emit(Inst::Class(self.classes.len() - 1))?;
            }
            Node::Bol => {
                self.emit(Inst::Bol)?;
            }
            Node::Eol => {
                self.emit(Inst::Eol)?;
            }
            Node::Group(a) => self.alt(a)?,
            Node::Repeat(e, min, max) => {
                for _ in 0..*min {
                    self.node(e)?;
                }
                match max {
                    None => {
                        let split = self.emit(Inst::Split(0, 0))?;
                        self.node(e)?;
                        self.emit(Inst::Jmp(split))?;
                        let end = self.prog.len();
                        self.prog[split] = Inst::Split(split + 1, end);
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            splits.push(self.emit(Inst::Split(0, 0))?);
                            self.node(e)?;
                        }
                        let end = self.prog.len();
                        for s in splits {
                            self.prog[s] = Inst::Split(s + 1, end);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Regex {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Regex, Error> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut p = Parser { s: &chars, i: 0 };
        let ast = p.alt(0)?;
        if p.i < chars.len() {
            return p.err("unmatched )");
        }
        let mut c = Compiler { prog: Vec::new(), classes: Vec::new() };
        c.alt(&ast)?;
        c.emit(Inst::Match)?;
        Ok(Regex { prog: c.prog, classes: c.classes })
    }

    fn add(&self, list: &mut Vec<usize>, on: &mut [bool], pc: usize, at: usize, len: usize) {
        let mut stack = vec![pc];
        while let Some(pc) = stack.pop() {
            if on[pc] {
                continue;
            }
            on[pc] = true;
            match self.prog[pc] {
                Inst::Jmp(t) => stack.push(t),
                Inst::Split(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                Inst::Bol => {
                    if at == 0 {
                        stack.push(pc + 1)
                    }
                }
                Inst::Eol => {
                    if at == len {
                        stack.push(pc + 1)
                    }
                }
                _ => list.push(pc),
            }
        }
    }

    /// Whether the pattern matches somewhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let n = self.prog.len();
        let (mut cur, mut next) = (Vec::with_capacity(n), Vec::with_capacity(n));
        // `on` marks the threads of `cur`, `on_next` those of `next`.
        let (mut on, mut on_next) = (vec![false; n], vec![false; n]);
        for at in 0..=chars.len() {
            // Unanchored: a new thread starts at every position.
            self.add(&mut cur, &mut on, 0, at, chars.len());
            next.clear();
            on_next.iter_mut().for_each(|x| *x = false);
            let c = chars.get(at).copied();
            for &pc in &cur {
                let step = match (&self.prog[pc], c) {
                    (Inst::Match, _) => return true,
                    (Inst::Char(x), Some(c)) => *x == c,
                    (Inst::Any, Some(c)) => c != '\n',
                    (Inst::Class(k), Some(c)) => {
                        let (r, neg) = &self.classes[*k];
                        r.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *neg
                    }
                    _ => false,
                };
                if step {
                    self.add(&mut next, &mut on_next, pc + 1, at + 1, chars.len());
                }
            }
            std::mem::swap(&mut cur, &mut next);
            std::mem::swap(&mut on, &mut on_next);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::Regex;

    fn m(p: &str, t: &str) -> bool {
        Regex::new(p).unwrap_or_else(|e| panic!("{p}: {e}")).is_match(t)
    }

    #[test]
    fn matches_like_pcre_on_the_subset() {
        assert!(m("ok", "status: ok\n"));
        assert!(!m("^ok", "status: ok"));
        assert!(m("^status", "status: ok"));
        assert!(m("ok$", "status: ok"));
        assert!(!m("ok$", "ok?"));
        assert!(m("a.c", "abc") && !m("a.c", "a\nc"));
        assert!(m("colou?r", "color") && m("colou?r", "colour"));
        assert!(m("\\d{3}-\\d+", "call 555-1234"));
        assert!(!m("^\\d{3}$", "5555"));
        assert!(m("^\\d{2,3}$", "555") && !m("^\\d{2,3}$", "5"));
        assert!(m("(foo|bar)baz", "xbarbaz") && !m("(foo|bar)baz", "bazbar"));
        assert!(m("[a-c]+x", "zzbcax") && !m("[^a-c]x", "ax"));
        assert!(m("\"healthy\":\\s*true", "{\"healthy\": true}"));
        assert!(m("a*", "") && m("(?:ab)+c", "ababc"));
        assert!(m("[\\d.]+", "1.5") && m("\\.", "a.b") && !m("\\.", "ab"));
        assert!(m("x{2}", "axxb") && !m("^x{2}$", "xxx"));
        assert!(m("a|", "zzz"), "an empty branch matches");
    }

    #[test]
    fn refuses_what_it_does_not_support_and_stays_linear() {
        for bad in ["(", "a)", "*a", "[a", "a{2,1}", "\\", "(?=x)", "\\b", "a{5000}"] {
            assert!(Regex::new(bad).is_err(), "{bad}");
        }
        // (a*)*b on a long run of a's: exponential for a backtracker.
        let t = "a".repeat(20_000);
        let t0 = std::time::Instant::now();
        assert!(!m("(a*)*b", &t));
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    }
}
