//! containerd's filter language, used by every `List` call and by `Events.Subscribe`.
//!
//! A filter string is one or more selectors joined by `,` (all must match); the repeated `filters`
//! field of a request holds alternatives (any may match). A selector is a dotted field path,
//! optionally followed by `==`, `!=` or `~=` and a value:
//!
//! ```text
//! name==foo,labels."containerd.io/gc.root"
//! namespace==moby,topic~=|^/tasks/|
//! ```
//!
//! The accepted syntax and the matching rules follow containerd so that clients get the same
//! answers from us, quirks included: an unquoted value cannot start with `.`, so `name~=.*` must
//! be written `name~=/.*/`, and `'` is not a quote. The tests hold the edge cases. Objects expose
//! their fields through [`Adaptor`].

use std::collections::HashMap;

use regex::{Regex, RegexBuilder};

use crate::error::{Error, Result};

/// Maps a field path (`["labels", "foo"]`) to the value of that field on one object, or `None`
/// when the object has no such field.
pub trait Adaptor {
    fn field(&self, path: &[String]) -> Option<String>;
}

/// The `labels.<key>` lookup shared by adaptors: `rest` is the path after `labels`. Like
/// containerd, the remaining components are joined with `.`, so `labels.a.b` and `labels."a.b"`
/// both name the key `a.b`.
pub fn label_field(labels: &HashMap<String, String>, rest: &[String]) -> Option<String> {
    labels.get(&rest.join(".")).cloned()
}

/// A parsed filter: an OR of ANDs of selectors. An empty AND matches everything.
#[derive(Debug, Clone)]
pub struct Filter {
    any: Vec<Vec<Selector>>,
}

impl Default for Filter {
    fn default() -> Self {
        Self::always()
    }
}

impl Filter {
    /// The filter that matches every object.
    pub fn always() -> Self {
        Filter {
            any: vec![Vec::new()],
        }
    }

    /// Parses one filter string; the empty string matches everything.
    pub fn parse(s: &str) -> Result<Filter> {
        if s.is_empty() {
            return Ok(Self::always());
        }
        let all = Parser { input: s, pos: 0 }.selectors()?;
        Ok(Filter { any: vec![all] })
    }

    /// Parses the alternatives of a request's repeated `filters` field. No alternatives match
    /// everything, and so does any empty alternative (as in containerd).
    pub fn parse_all<S: AsRef<str>>(filters: &[S]) -> Result<Filter> {
        if filters.is_empty() {
            return Ok(Self::always());
        }
        let mut any = Vec::with_capacity(filters.len());
        for f in filters {
            any.extend(Self::parse(f.as_ref())?.any);
        }
        Ok(Filter { any })
    }

    /// Whether the filter matches everything, so callers may skip building adaptors.
    pub fn is_always(&self) -> bool {
        self.any.iter().any(Vec::is_empty)
    }

    pub fn matches(&self, a: &dyn Adaptor) -> bool {
        self.any
            .iter()
            .any(|all| all.iter().all(|sel| sel.matches(a)))
    }
}

#[derive(Debug, Clone)]
enum Op {
    Present,
    Equal(String),
    NotEqual(String),
    Matches(Regex),
}

#[derive(Debug, Clone)]
struct Selector {
    path: Vec<String>,
    op: Op,
}

impl Selector {
    fn matches(&self, a: &dyn Adaptor) -> bool {
        let value = a.field(&self.path);
        match &self.op {
            Op::Present => value.is_some(),
            Op::Equal(want) => value.as_deref() == Some(want.as_str()),
            // containerd compares an absent field as "" for `!=` and `~=`: `labels.x!=y` keeps
            // objects without the label, `labels.x~=/.*/` matches every object.
            Op::NotEqual(want) => value.as_deref().unwrap_or("") != want,
            Op::Matches(re) => re.is_match(value.as_deref().unwrap_or("")),
        }
    }
}

/// Bounds the compiled size of a client-supplied regex so one filter cannot eat the daemon's memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Recursive descent over the input. Whitespace is allowed between tokens (containerd only skips
/// it before a token, and so rejects e.g. a trailing space; accepting it changes no meaning).
struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let (input, start) = (self.input, self.pos);
        while self.peek().is_some_and(&f) {
            self.bump();
        }
        &input[start..self.pos]
    }

    fn selectors(&mut self) -> Result<Vec<Selector>> {
        let mut all = vec![self.selector()?];
        loop {
            self.skip_space();
            match self.peek() {
                None => return Ok(all),
                Some(',') => {
                    self.bump();
                    all.push(self.selector()?);
                }
                Some(c) => return Err(self.error(self.pos, &format!("unexpected input: {c}"))),
            }
        }
    }

    fn selector(&mut self) -> Result<Selector> {
        let path = self.fieldpath()?;
        self.skip_space();
        if matches!(self.peek(), None | Some(',')) {
            return Ok(Selector {
                path,
                op: Op::Present,
            });
        }
        let op = self.operator()?;
        self.skip_space();
        let at = self.pos;
        let value = self.value(op == "~=")?;
        let op = match op {
            "==" => Op::Equal(value),
            "!=" => Op::NotEqual(value),
            _ => Op::Matches(self.regex(at, &value)?),
        };
        Ok(Selector { path, op })
    }

    fn fieldpath(&mut self) -> Result<Vec<String>> {
        let mut path = vec![self.field()?];
        loop {
            self.skip_space();
            if self.peek() != Some('.') {
                return Ok(path);
            }
            self.bump();
            path.push(self.field()?);
        }
    }

    fn field(&mut self) -> Result<String> {
        self.skip_space();
        match self.peek() {
            Some(c) if is_field_char(c) => Ok(self.take_while(is_field_char).to_string()),
            Some('"') => self.quoted(),
            // `/` and `|` quoting exists for regex values only
            Some('/' | '|') => Err(self.error(self.pos, "invalid quote encountered")),
            _ => Err(self.error(self.pos, "expected field or quoted")),
        }
    }

    fn operator(&mut self) -> Result<&'static str> {
        let at = self.pos;
        match self.take_while(|c| matches!(c, '=' | '!' | '~')) {
            "==" => Ok("=="),
            "!=" => Ok("!="),
            "~=" => Ok("~="),
            "" => Err(self.error(at, r#"expected an operator ("=="|"!="|"~=")"#)),
            other => Err(self.error(at, &format!("unsupported operator {other:?}"))),
        }
    }

    fn value(&mut self, regex: bool) -> Result<String> {
        match self.peek() {
            Some('"') => self.quoted(),
            Some('/' | '|') if regex => self.quoted(),
            Some('/' | '|') => Err(self.error(self.pos, "invalid quote encountered")),
            // containerd's scanner reads these as separator or operator tokens, never a value
            Some(',' | '.' | '=' | '!' | '~') | None => {
                Err(self.error(self.pos, "expected value or quoted"))
            }
            Some(c) if is_value_char(c) => Ok(self.take_while(is_value_char).to_string()),
            Some(_) => Err(self.error(self.pos, "expected value or quoted")),
        }
    }

    /// A quoted string with Go's escapes; the quote character may be `"`, `/` or `|`, and only
    /// the quote in use may be escaped. `\x` and octal escapes give raw bytes, so the result is
    /// checked for UTF-8 at the end.
    fn quoted(&mut self) -> Result<String> {
        let start = self.pos;
        let quote = self.bump().expect("caller peeked the opening quote");
        let mut out = Vec::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None | Some('\n' | '\0') => {
                    return Err(self.error(start, "quoted string not terminated"));
                }
                Some(c) if c == quote => break,
                Some('\\') => self.escape(quote, at, &mut out)?,
                Some(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        String::from_utf8(out).map_err(|_| self.error(start, "quoted string is not valid utf-8"))
    }

    fn escape(&mut self, quote: char, at: usize, out: &mut Vec<u8>) -> Result<()> {
        let simple = match self.bump() {
            Some('a') => 0x07,
            Some('b') => 0x08,
            Some('f') => 0x0c,
            Some('n') => b'\n',
            Some('r') => b'\r',
            Some('t') => b'\t',
            Some('v') => 0x0b,
            Some('\\') => b'\\',
            Some(c) if c == quote => c as u8,
            Some('x') => {
                let v = self.code(at, 16, 2)?;
                out.push(u8::try_from(v).expect("two hex digits fit a byte"));
                return Ok(());
            }
            Some(d @ '0'..='7') => {
                let v = ((d as u32 - '0' as u32) << 6) | self.code(at, 8, 2)?;
                let byte = u8::try_from(v).map_err(|_| self.bad_escape(at))?;
                out.push(byte);
                return Ok(());
            }
            Some(u @ ('u' | 'U')) => {
                let v = self.code(at, 16, if u == 'u' { 4 } else { 8 })?;
                let c = char::from_u32(v).ok_or_else(|| self.bad_escape(at))?;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                return Ok(());
            }
            _ => return Err(self.bad_escape(at)),
        };
        out.push(simple);
        Ok(())
    }

    /// Reads exactly `digits` digits in `radix` for a numeric escape.
    fn code(&mut self, at: usize, radix: u32, digits: usize) -> Result<u32> {
        let mut v: u32 = 0;
        for _ in 0..digits {
            let d = self.peek().and_then(|c| c.to_digit(radix));
            let d = d.ok_or_else(|| self.bad_escape(at))?;
            self.bump();
            v = v.checked_mul(radix).ok_or_else(|| self.bad_escape(at))? + d;
        }
        Ok(v)
    }

    fn bad_escape(&self, at: usize) -> Error {
        self.error(at, "invalid escape sequence in quoted string")
    }

    /// Compiled once here, not per match. Rust's syntax is close to Go's RE2; one difference is
    /// that `\d`, `\w` and `\s` also match non-ASCII characters.
    fn regex(&self, at: usize, pattern: &str) -> Result<Regex> {
        RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                // the syntax error text spans several lines; its last line names the problem
                let reason = match &e {
                    regex::Error::Syntax(s) => s
                        .lines()
                        .rev()
                        .find_map(|l| l.strip_prefix("error: "))
                        .unwrap_or(s)
                        .to_string(),
                    other => other.to_string().to_lowercase(),
                };
                self.error(at, &format!("invalid regular expression: {reason}"))
            })
    }

    /// containerd's message shape: the input with the offending character marked, e.g.
    /// `filters: parse error: [labels. >|?|< x]: expected field or quoted`.
    fn error(&self, at: usize, msg: &str) -> Error {
        let shown = match self.input[at..].chars().next() {
            Some(c) => {
                let (before, after) = (&self.input[..at], &self.input[at + c.len_utf8()..]);
                format!("{} >|{c}|< {}", clip_front(before), clip_back(after))
            }
            None => clip_front(self.input),
        };
        Error::invalid(format!("filters: parse error: [{shown}]: {msg}"))
    }
}

/// How much input an error message echoes on each side of the marker; the message travels in a
/// gRPC header, so it stays short however long the filter is.
const CONTEXT_CHARS: usize = 64;

fn clip_front(s: &str) -> String {
    match s.char_indices().rev().nth(CONTEXT_CHARS - 1) {
        Some((i, _)) if i > 0 => format!("...{}", &s[i..]),
        _ => s.to_string(),
    }
}

fn clip_back(s: &str) -> String {
    match s.char_indices().nth(CONTEXT_CHARS) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

fn is_field_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Unquoted values run to the next `,` or whitespace; control characters are not allowed.
fn is_value_char(c: char) -> bool {
    c != ',' && !c.is_whitespace() && !c.is_control()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    /// A test object: a few plain fields plus labels, adapted like the daemon's real objects.
    struct Obj {
        name: &'static str,
        other: &'static str,
        labels: HashMap<String, String>,
    }

    fn obj(name: &'static str, other: &'static str, labels: &[(&str, &str)]) -> Obj {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Obj {
            name,
            other,
            labels,
        }
    }

    /// Adapts a closure, for objects with a couple of fields.
    struct Fields<T>(T);

    impl<T: Fn(&[String]) -> Option<String>> Adaptor for Fields<T> {
        fn field(&self, path: &[String]) -> Option<String> {
            (self.0)(path)
        }
    }

    impl Adaptor for Obj {
        fn field(&self, path: &[String]) -> Option<String> {
            let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
            match path.first()?.as_str() {
                "name" => some(self.name),
                "other" => some(self.other),
                "labels" => label_field(&self.labels, &path[1..]),
                _ => None,
            }
        }
    }

    fn corpus() -> Vec<Obj> {
        vec![
            obj("foo", "", &[("foo", "true")]),
            obj("bar", "", &[]),
            obj(
                "foo",
                "",
                &[("foo", "present"), ("more complex label", "present")],
            ),
            obj("bar", "", &[("bar", "true")]),
            obj(
                "fooer",
                "",
                &[(r#"more complex label with \ and ""#, "present")],
            ),
            obj(
                "fooer",
                "",
                &[(r#"more complex label with \ and ".post"#, "present")],
            ),
            obj("baz", "too complex, yo", &[]),
            obj("bazo", "abc", &[]),
            obj("compound", "", &[("foo", "omg_asdf.asdf-qwer")]),
        ]
    }

    /// Indexes of the corpus objects the filter selects.
    fn selected(f: &Filter) -> Vec<usize> {
        let c = corpus();
        (0..c.len()).filter(|&i| f.matches(&c[i])).collect()
    }

    fn sel(input: &str) -> Vec<usize> {
        selected(&Filter::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}")))
    }

    fn parse_err(input: &str) -> String {
        let e = Filter::parse(input).expect_err(input);
        assert_eq!(e.kind, Kind::InvalidArgument, "{input:?}");
        e.msg
    }

    /// The single selector's value after unquoting, found by matching against probes.
    fn value_of(input: &str) -> String {
        let f = Filter::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        match &f.any[0][0].op {
            Op::Equal(v) | Op::NotEqual(v) => v.clone(),
            Op::Matches(re) => re.as_str().to_string(),
            Op::Present => panic!("{input:?} has no value"),
        }
    }

    fn path_of(input: &str) -> Vec<String> {
        Filter::parse(input).expect(input).any[0][0].path.clone()
    }

    #[test]
    fn matching_table() {
        let all: Vec<usize> = (0..9).collect();
        let cases: &[(&str, &[usize])] = &[
            ("", &all),
            ("name", &all),
            ("labels.foo", &[0, 2, 8]),
            ("labels.foo,name", &[0, 2, 8]),
            ("labels.foo==true", &[0]),
            ("labels.foo==omg_asdf.asdf-qwer", &[8]),
            ("name==bar", &[1, 3]),
            ("name!=bar", &[0, 2, 4, 5, 6, 7, 8]),
            ("name==bar,labels.bar", &[3]),
            (r#"other=="too complex, yo""#, &[6]),
            ("other~=[abc]+,name!=foo", &[6, 7]),
            ("other~=/[abc]+/,name!=foo", &[6, 7]),
            ("other~=/[abc]{1,2}/,name!=foo", &[6, 7]),
            (r#"other~=/[abc]{0,1}"\//,name!=foo"#, &[]),
            ("name==bar,labels.bar==true", &[3]),
            ("name==bar,labels.bar==wrong", &[]),
            (r#"name==foo,labels."more complex label""#, &[2]),
            (
                r#"labels."more complex label with \\ and \""==present"#,
                &[4],
            ),
            (
                r#"labels."more complex label with \\ and \"".post==present"#,
                &[5],
            ),
            (" name == bar , labels . bar ", &[3]),
            ("name~=^foo", &[0, 2, 4, 5]),
            ("name~=\"^foo$\"", &[0, 2]),
        ];
        for (input, want) in cases {
            assert_eq!(sel(input), *want, "{input:?}");
        }
    }

    #[test]
    fn parse_errors_point_at_the_problem() {
        let cases = [
            ("labels.", "[labels.]: expected field or quoted"),
            ("name==foo,", "[name==foo,]: expected field or quoted"),
            (
                "image~=,id?=?fbaq",
                "[image~= >|,|< id?=?fbaq]: expected value or quoted",
            ),
            (
                r#"labels.?"x".post==present"#,
                r#"[labels. >|?|< "x".post==present]: expected field or quoted"#,
            ),
            (
                "labels.|foo|==omg",
                "[labels. >|||< foo|==omg]: invalid quote encountered",
            ),
            ("name==/foo/", "[name== >|/|< foo/]: invalid quote encountered"),
            ("name=foo", r#"[name >|=|< foo]: unsupported operator "=""#),
            ("name===foo", r#"[name >|=|< ==foo]: unsupported operator "===""#),
            ("name foo", r#"[name  >|f|< oo]: expected an operator ("=="|"!="|"~=")"#),
            ("name==", "[name==]: expected value or quoted"),
            ("name==.x", "[name== >|.|< x]: expected value or quoted"),
            // as in containerd, an unquoted regex cannot start with `.`
            ("name~=.*", "[name~= >|.|< *]: expected value or quoted"),
            ("name==foo bar", "[name==foo  >|b|< ar]: unexpected input: b"),
            (r#"name=="a"b"#, r#"[name=="a" >|b|< ]: unexpected input: b"#),
            (" ", "[ ]: expected field or quoted"),
            (",", "[ >|,|< ]: expected field or quoted"),
            ("a,,b", "[a, >|,|< b]: expected field or quoted"),
            ("na\u{0}me", "[na >|\u{0}|< me]: expected an operator (\"==\"|\"!=\"|\"~=\")"),
            ("labels.'x'", "[labels. >|'|< x']: expected field or quoted"),
            ("labels.\"x", "[labels. >|\"|< x]: quoted string not terminated"),
            ("a~=/x", "[a~= >|/|< x]: quoted string not terminated"),
            ("a==\"x\ny\"", "[a== >|\"|< x\ny\"]: quoted string not terminated"),
            (
                r#"a=="x\qy""#,
                r#"[a=="x >|\|< qy"]: invalid escape sequence in quoted string"#,
            ),
            ("a~=(", "[a~= >|(|< ]: invalid regular expression: unclosed group"),
            ("a~=|[z-a]|", "[a~= >|||< [z-a]|]: invalid regular expression: invalid character class range, the start must be <= the end"),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_err(input),
                format!("filters: parse error: {want}"),
                "{input:?}"
            );
        }
    }

    #[test]
    fn long_input_is_clipped_in_errors() {
        let input = format!("{}==x y{}", "a".repeat(1000), "b".repeat(1000));
        let msg = parse_err(&input);
        assert!(msg.len() < 300, "{msg}");
        assert!(msg.contains(&format!(
            "...{}==x  >|y|< {}...",
            "a".repeat(60),
            "b".repeat(64)
        )));
    }

    #[test]
    fn quoting_forms() {
        assert_eq!(value_of(r#"a=="x, y""#), "x, y");
        assert_eq!(
            value_of(r#"a=="\a\b\f\n\r\t\v\\\"""#),
            "\x07\x08\x0c\n\r\t\x0b\\\""
        );
        assert_eq!(value_of(r#"a=="\x41\101\u00e9\U0001F600""#), "AAé😀");
        assert_eq!(value_of(r#"a=="""#), "");
        assert_eq!(value_of("a==\"牛\""), "牛");
        // `/` and `|` quote regexes; only the quote in use may be escaped
        assert_eq!(value_of(r"a~=/foo\/bar/"), "foo/bar");
        assert_eq!(value_of("a~=|foo/bar|"), "foo/bar");
        assert_eq!(value_of(r"a~=|a\|b|"), "a|b");
        assert_eq!(value_of(r"a~=/a\\.b/"), r"a\.b");
        assert_eq!(value_of(r#"a~="^x""#), "^x");
        // unquoted values run to `,` or whitespace and keep every other character
        assert_eq!(value_of(r"a~=[abc]\+"), r"[abc]\+");
        assert_eq!(value_of("a==b=c.d/e|f\"g"), "b=c.d/e|f\"g");
        assert_eq!(value_of("a~=牛"), "牛");
        // containerd has no single-quote quoting: the quotes are part of the value
        assert_eq!(value_of("a=='x'"), "'x'");
        assert_eq!(
            path_of(r#""leading quote".post"#),
            ["leading quote", "post"]
        );
        assert_eq!(
            path_of(r#"labels."containerd.io/gc.root""#),
            ["labels", "containerd.io/gc.root"]
        );
        assert_eq!(path_of("labels.a-b.c_d.0"), ["labels", "a-b", "c_d", "0"]);
        assert_eq!(path_of(r#"labels."""#), ["labels", ""]);

        for bad in [
            r#"a=="\/""#,     // `/` escaped inside `"`
            r#"a~=/\"/"#,     // `"` escaped inside `/`
            r#"a~=/\d+/"#,    // regex escapes need `\\` inside quotes
            r#"a=="\'""#,     // single quote is never a quote character
            r#"a=="\x4""#,    // short hex
            r#"a=="\400""#,   // octal above 255
            r#"a=="\18""#,    // non-octal digit
            r#"a=="\uD800""#, // surrogate
            r#"a=="\U00110000""#,
            r#"a=="\xff""#, // raw byte that is not utf-8
            "a==\"x\\",
        ] {
            let msg = parse_err(bad);
            assert!(msg.starts_with("filters: parse error: ["), "{bad:?}: {msg}");
        }
        assert!(parse_err(r#"a=="\xff""#).ends_with("quoted string is not valid utf-8"));
    }

    #[test]
    fn dockerd_event_filter() {
        let f = Filter::parse_all(&["namespace==moby,topic~=|^/tasks/|"]).expect("dockerd filter");
        let event = |ns: &'static str, topic: &'static str| {
            Fields(
                move |path: &[String]| match path.first().map(String::as_str) {
                    Some("namespace") => Some(ns.to_string()),
                    Some("topic") => Some(topic.to_string()),
                    _ => None,
                },
            )
        };
        assert!(f.matches(&event("moby", "/tasks/exit")));
        assert!(!f.matches(&event("moby", "/containers/create")));
        assert!(!f.matches(&event("default", "/tasks/exit")));
        assert!(!f.matches(&event("moby", "/x/tasks/")));
    }

    #[test]
    fn uncompressed_label_filter() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let input = format!(r#"labels."containerd.io/uncompressed"=={digest}"#);
        let f = Filter::parse_all(&[input]).expect("ctr import filter");
        let blob = |value: String| {
            let labels = HashMap::from([("containerd.io/uncompressed".to_string(), value)]);
            Fields(move |path: &[String]| match path.split_first() {
                Some((head, rest)) if head == "labels" => label_field(&labels, rest),
                _ => None,
            })
        };
        assert!(f.matches(&blob(digest.clone())));
        assert!(!f.matches(&blob(format!("{digest}0"))));
        assert!(!f.matches(&Fields(|_: &[String]| None)));
    }

    #[test]
    fn absent_fields() {
        let none = Fields(|_: &[String]| None::<String>);
        let empty = Fields(|_: &[String]| Some(String::new()));
        let m = |input: &str, a: &dyn Adaptor| Filter::parse(input).expect(input).matches(a);
        // presence and equality need the field
        assert!(!m("labels.x", &none));
        assert!(m("labels.x", &empty));
        assert!(!m("labels.x==y", &none));
        assert!(!m("labels.x==\"\"", &none));
        assert!(m("labels.x==\"\"", &empty));
        // `!=` and `~=` read an absent field as ""
        assert!(m("labels.x!=y", &none));
        assert!(!m(r#"labels.x!="""#, &none));
        assert!(m("labels.x~=/.*/", &none));
        assert!(m("labels.x~=^$", &none));
        assert!(!m("labels.x~=/.+/", &none));
    }

    #[test]
    fn alternatives_are_ored() {
        let f = Filter::parse_all(&["name==foo,labels.foo==true", "name==bazo"]).expect("or");
        assert_eq!(selected(&f), [0, 7]);
        assert!(!f.is_always());

        let none: &[&str] = &[];
        assert!(Filter::parse_all(none).expect("empty list").is_always());
        assert_eq!(
            selected(&Filter::parse_all(none).expect("empty")),
            (0..9).collect::<Vec<_>>()
        );
        // an empty alternative matches everything, as in containerd
        let f = Filter::parse_all(&["name==nothing", ""]).expect("with empty");
        assert!(f.is_always());
        assert_eq!(selected(&f).len(), 9);
        assert!(Filter::always().is_always() && Filter::default().is_always());

        let e = Filter::parse_all(&["name==foo", "name=="]).expect_err("second is bad");
        assert_eq!(e.kind, Kind::InvalidArgument);
        assert_eq!(
            e.msg,
            "filters: parse error: [name==]: expected value or quoted"
        );
    }

    #[test]
    fn label_field_joins_the_rest_of_the_path() {
        let labels = HashMap::from([
            ("a.b".to_string(), "1".to_string()),
            ("c".to_string(), "2".to_string()),
        ]);
        let p = |s: &[&str]| s.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        assert_eq!(label_field(&labels, &p(&["a", "b"])), Some("1".into()));
        assert_eq!(label_field(&labels, &p(&["a.b"])), Some("1".into()));
        assert_eq!(label_field(&labels, &p(&["c"])), Some("2".into()));
        assert_eq!(label_field(&labels, &p(&["a"])), None);
        assert_eq!(label_field(&labels, &p(&[])), None);
        assert!(Filter::parse("labels.a.b==1")
            .expect("dotted")
            .matches(&obj("x", "", &[("a.b", "1")])));
    }
}
