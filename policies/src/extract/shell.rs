//! A small POSIX-shell word splitter for `sh -c` scripts of init containers: enough to find `kit unpack`,
//! `oras pull` and `skopeo copy` commands and where their words sit in the script (for pinning). It
//! expands nothing; a word that would be expanded (`$VAR`, `$(…)`, backquotes) is marked dynamic, so its
//! value is unknown. Anything it cannot follow (unterminated quotes, here-documents) is an error.

/// Longest script read.
pub(crate) const MAX_SCRIPT_LEN: usize = 64 * 1024;
/// Most words in a script.
const MAX_WORDS: usize = 4096;

/// A shell word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    /// The word after quote removal.
    pub(crate) value: String,
    /// Byte range of `value` in the script when it appears there literally (so it can be replaced).
    pub(crate) span: Option<(usize, usize)>,
    /// Contains an expansion: its value at run time is unknown.
    pub(crate) dynamic: bool,
}

/// Why a script cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShellError(pub(crate) String);

/// The script's simple commands, each a list of words (redirections removed).
pub(crate) fn split(script: &str) -> Result<Vec<Vec<Word>>, ShellError> {
    if script.len() > MAX_SCRIPT_LEN {
        return Err(ShellError(format!("script longer than {MAX_SCRIPT_LEN} bytes")));
    }
    let mut s = Splitter { src: script, commands: Vec::new(), current: Vec::new(), word: None, words: 0 };
    s.run()?;
    Ok(s.commands)
}

struct Building {
    value: String,
    start: usize,
    dynamic: bool,
    redirect_target: bool,
}

struct Splitter<'a> {
    src: &'a str,
    commands: Vec<Vec<Word>>,
    current: Vec<(Word, bool)>,
    word: Option<Building>,
    words: usize,
}

impl Splitter<'_> {
    fn run(&mut self) -> Result<(), ShellError> {
        let bytes = self.src.as_bytes();
        let mut chars = self.src.char_indices().peekable();
        let mut next_is_redirect_target = false;
        while let Some((i, c)) = chars.next() {
            match c {
                ' ' | '\t' => self.end_word(i, &mut next_is_redirect_target)?,
                '\n' | ';' | '&' | '|' | '(' | ')' => {
                    self.end_word(i, &mut next_is_redirect_target)?;
                    self.end_command();
                }
                '#' if self.word.is_none() => {
                    while chars.peek().is_some_and(|&(_, c)| c != '\n') {
                        chars.next();
                    }
                }
                '<' | '>' => {
                    // `2>&1`: a file-descriptor number right before the operator is part of it.
                    if self
                        .word
                        .as_ref()
                        .is_some_and(|w| !w.value.is_empty() && w.value.bytes().all(|b| b.is_ascii_digit()))
                    {
                        self.word = None;
                    } else {
                        self.end_word(i, &mut next_is_redirect_target)?;
                    }
                    if c == '<' && chars.peek().is_some_and(|&(_, n)| n == '<') {
                        return Err(ShellError("here-documents are not followed".into()));
                    }
                    while chars.peek().is_some_and(|&(_, n)| matches!(n, '<' | '>' | '&' | '|')) {
                        chars.next();
                    }
                    next_is_redirect_target = true;
                }
                '\'' => {
                    let w = self.start(i, next_is_redirect_target);
                    loop {
                        match chars.next() {
                            Some((_, '\'')) => break,
                            Some((_, ch)) => w.value.push(ch),
                            None => return Err(ShellError("unterminated single quote".into())),
                        }
                    }
                }
                '"' => {
                    let w = self.start(i, next_is_redirect_target);
                    loop {
                        match chars.next() {
                            Some((_, '"')) => break,
                            Some((_, '\\')) => match chars.next() {
                                Some((_, n @ ('"' | '\\' | '$' | '`'))) => w.value.push(n),
                                Some((_, '\n')) => {}
                                Some((_, n)) => {
                                    w.value.push('\\');
                                    w.value.push(n);
                                }
                                None => return Err(ShellError("unterminated double quote".into())),
                            },
                            Some((_, ch @ ('$' | '`'))) => {
                                w.dynamic = true;
                                w.value.push(ch);
                            }
                            Some((_, ch)) => w.value.push(ch),
                            None => return Err(ShellError("unterminated double quote".into())),
                        }
                    }
                }
                '\\' => {
                    // A backslash-newline joins lines and is removed entirely.
                    if chars.peek().is_some_and(|&(_, n)| n == '\n') {
                        chars.next();
                        continue;
                    }
                    let w = self.start(i, next_is_redirect_target);
                    if let Some((_, n)) = chars.next() {
                        w.value.push(n);
                    }
                }
                '`' => {
                    let w = self.start(i, next_is_redirect_target);
                    w.dynamic = true;
                    w.value.push('`');
                    loop {
                        match chars.next() {
                            Some((_, '`')) => break,
                            Some((_, ch)) => w.value.push(ch),
                            None => return Err(ShellError("unterminated backquote".into())),
                        }
                    }
                    w.value.push('`');
                }
                '$' => {
                    let w = self.start(i, next_is_redirect_target);
                    w.dynamic = true;
                    w.value.push('$');
                    if bytes.get(i + 1) == Some(&b'(') {
                        // `$(…)`: skip to the balancing parenthesis (quotes inside are not followed).
                        let mut depth = 0usize;
                        for (_, ch) in chars.by_ref() {
                            w.value.push(ch);
                            match ch {
                                '(' => depth += 1,
                                ')' => {
                                    depth = depth.saturating_sub(1);
                                    if depth == 0 {
                                        break;
                                    }
                                }
                                _ => {}
                            }
                        }
                        if depth != 0 {
                            return Err(ShellError("unterminated command substitution".into()));
                        }
                    }
                }
                c => {
                    let w = self.start(i, next_is_redirect_target);
                    w.value.push(c);
                }
            }
        }
        self.end_word(self.src.len(), &mut next_is_redirect_target)?;
        self.end_command();
        Ok(())
    }

    fn start(&mut self, at: usize, redirect_target: bool) -> &mut Building {
        self.word.get_or_insert(Building { value: String::new(), start: at, dynamic: false, redirect_target })
    }

    fn end_word(&mut self, end: usize, next_is_redirect_target: &mut bool) -> Result<(), ShellError> {
        let Some(w) = self.word.take() else {
            return Ok(());
        };
        self.words += 1;
        if self.words > MAX_WORDS {
            return Err(ShellError(format!("more than {MAX_WORDS} words")));
        }
        let raw = self.src.get(w.start..end).unwrap_or_default();
        let span = if raw == w.value {
            Some((w.start, end))
        } else if raw.len() >= 2
            && (raw.starts_with('\'') && raw.ends_with('\'') || raw.starts_with('"') && raw.ends_with('"'))
            && raw.get(1..raw.len() - 1) == Some(w.value.as_str())
        {
            Some((w.start + 1, end - 1))
        } else {
            None
        };
        let redirect = w.redirect_target;
        *next_is_redirect_target = false;
        self.current.push((Word { value: w.value, span, dynamic: w.dynamic }, redirect));
        Ok(())
    }

    fn end_command(&mut self) {
        let words: Vec<Word> = std::mem::take(&mut self.current)
            .into_iter()
            .filter_map(|(w, redirect)| (!redirect).then_some(w))
            .collect();
        if !words.is_empty() {
            self.commands.push(words);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(script: &str) -> Vec<Vec<String>> {
        split(script).unwrap().into_iter().map(|c| c.into_iter().map(|w| w.value).collect()).collect()
    }

    #[test]
    fn commands_and_words_are_split_like_sh() {
        assert_eq!(
            values("set -e; kit unpack 'ghcr.io/a/b:1' -d /models && echo \"done here\"\nls"),
            vec![
                vec!["set", "-e"],
                vec!["kit", "unpack", "ghcr.io/a/b:1", "-d", "/models"],
                vec!["echo", "done here"],
                vec!["ls"]
            ]
        );
        assert_eq!(values("a\\ b c # comment\nd"), vec![vec!["a b", "c"], vec!["d"]]);
        assert_eq!(
            values("oras pull x >/dev/null 2>&1 | tee log"),
            vec![vec!["oras", "pull", "x"], vec!["tee", "log"]]
        );
        assert_eq!(values("kit unpack \\\n  x"), vec![vec!["kit", "unpack", "x"]]);
    }

    #[test]
    fn spans_locate_literal_words_only() {
        let script =
            "kit unpack \"ghcr.io/a/b:1\" --dir=/m; oras pull ghcr.io/c/d:2; kit unpack gh\"cr.io/x\":1";
        let cmds = split(script).unwrap();
        let (s, e) = cmds[0][2].span.unwrap();
        assert_eq!(&script[s..e], "ghcr.io/a/b:1");
        let (s, e) = cmds[1][2].span.unwrap();
        assert_eq!(&script[s..e], "ghcr.io/c/d:2");
        assert_eq!(cmds[2][2].value, "ghcr.io/x:1");
        assert_eq!(cmds[2][2].span, None, "mixed quoting cannot be replaced in place");
    }

    #[test]
    fn expansions_are_dynamic() {
        let cmds = split("kit unpack $REF; kit unpack \"${REF}\"; kit unpack $(cat /ref); kit unpack `cat r`; kit unpack '$REF'").unwrap();
        assert!(cmds[0][2].dynamic && cmds[1][2].dynamic && cmds[2][2].dynamic && cmds[3][2].dynamic);
        assert!(!cmds[4][2].dynamic, "single quotes expand nothing");
        assert_eq!(cmds[2][2].value, "$(cat /ref)");
    }

    #[test]
    fn what_cannot_be_followed_is_an_error() {
        assert!(split("kit unpack 'x").is_err());
        assert!(split("kit unpack \"x").is_err());
        assert!(split("cat <<EOF\nx\nEOF").is_err());
        assert!(split("echo $(date").is_err());
        assert!(split(&"a ".repeat(MAX_SCRIPT_LEN)).is_err());
    }
}
