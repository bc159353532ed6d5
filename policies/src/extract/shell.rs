//! A small POSIX-shell word splitter for `sh -c` scripts of init containers: enough to find `kit unpack`,
//! `oras pull` and `skopeo copy` commands and where their words sit in the script (for pinning). It
//! expands nothing; a word that would be expanded (`$VAR`, `$(…)`, backquotes) is marked dynamic, so its
//! value is unknown. A here-document's body is data and is skipped (its text is no command), unless the
//! script runs a shell or interpreter that could read it as commands. Anything it cannot follow
//! (unterminated quotes or here-documents, a here-document a shell may run) is an error.

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
    let mut s = Splitter {
        src: script,
        commands: Vec::new(),
        current: Vec::new(),
        word: None,
        words: 0,
        heredoc_next: None,
        pending_heredocs: Vec::new(),
        heredocs: 0,
    };
    s.run()?;
    if s.heredocs > 0 && s.commands.iter().any(|c| c.first().is_some_and(|w| reads_commands(&w.value))) {
        return Err(ShellError(
            "a here-document in a script that runs a shell or interpreter is not followed".into(),
        ));
    }
    Ok(s.commands)
}

/// Programs that may run a here-document's text as commands (`sh <<EOF`, `cat <<EOF | bash`).
fn reads_commands(program: &str) -> bool {
    let name = program.rsplit('/').next().unwrap_or(program);
    matches!(
        name,
        "sh" | "bash" | "ash" | "dash" | "zsh" | "ksh" | "busybox" | "eval" | "source" | "." | "xargs"
    ) || name.starts_with("python")
        || name.starts_with("perl")
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
    /// After `<<` / `<<-`: the next word is a here-document delimiter (`true`: leading tabs stripped).
    heredoc_next: Option<bool>,
    /// Here-documents whose bodies start at the next newline: (delimiter, strip tabs).
    pending_heredocs: Vec<(String, bool)>,
    /// Here-documents skipped.
    heredocs: usize,
}

impl Splitter<'_> {
    fn run(&mut self) -> Result<(), ShellError> {
        let bytes = self.src.as_bytes();
        let mut chars = self.src.char_indices().peekable();
        let mut next_is_redirect_target = false;
        while let Some((i, c)) = chars.next() {
            match c {
                ' ' | '\t' => self.end_word(i, &mut next_is_redirect_target)?,
                '\n' => {
                    self.end_word(i, &mut next_is_redirect_target)?;
                    self.end_command();
                    self.skip_heredoc_bodies(&mut chars)?;
                }
                ';' | '&' | '|' | '(' | ')' => {
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
                        chars.next();
                        if chars.peek().is_some_and(|&(_, n)| n == '<') {
                            chars.next(); // `<<<` here-string: its word is a redirect target like any other
                        } else {
                            let strip_tabs = chars.peek().is_some_and(|&(_, n)| n == '-');
                            if strip_tabs {
                                chars.next();
                            }
                            self.heredoc_next = Some(strip_tabs);
                        }
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
        if self.heredoc_next.is_some() || !self.pending_heredocs.is_empty() {
            return Err(ShellError("unterminated here-document".into()));
        }
        Ok(())
    }

    /// At a newline: skip the bodies of the here-documents started on the line just ended.
    fn skip_heredoc_bodies(
        &mut self,
        chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    ) -> Result<(), ShellError> {
        if self.heredoc_next.is_some() {
            return Err(ShellError("here-document without a delimiter".into()));
        }
        for (delimiter, strip_tabs) in std::mem::take(&mut self.pending_heredocs) {
            loop {
                let mut line = String::new();
                let mut ended = false;
                for (_, ch) in chars.by_ref() {
                    if ch == '\n' {
                        ended = true;
                        break;
                    }
                    line.push(ch);
                }
                let line = if strip_tabs { line.trim_start_matches('\t') } else { line.as_str() };
                if line == delimiter {
                    break;
                }
                if !ended {
                    return Err(ShellError(format!("unterminated here-document (no line {delimiter:?})")));
                }
            }
            self.heredocs += 1;
        }
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
        if redirect {
            if let Some(strip_tabs) = self.heredoc_next.take() {
                self.pending_heredocs.push((w.value.clone(), strip_tabs));
            }
        }
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
    fn here_document_bodies_are_data() {
        assert_eq!(
            values("cat > /m/README <<'EOF'\ncurl https://huggingface.co/a/b -o x.gguf\nEOF\nls /m"),
            vec![vec!["cat"], vec!["ls", "/m"]]
        );
        assert_eq!(
            values("cat <<-END >/etc/x; echo a\n\tkit unpack r.io/a:1\n\tEND\noras pull r.io/b:2"),
            vec![vec!["cat"], vec!["echo", "a"], vec!["oras", "pull", "r.io/b:2"]]
        );
        assert_eq!(values("cat <<<'oras pull x'"), vec![vec!["cat"]], "a here-string is a redirect");
    }

    #[test]
    fn what_cannot_be_followed_is_an_error() {
        assert!(split("kit unpack 'x").is_err());
        assert!(split("kit unpack \"x").is_err());
        assert!(split("cat <<EOF\nx\n").is_err(), "unterminated here-document");
        assert!(split("sh <<EOF\noras pull x\nEOF").is_err(), "a shell may run the body");
        assert!(split("cat <<'EOF' | bash\noras pull x\nEOF").is_err(), "piped into a shell");
        assert!(split("echo $(date").is_err());
        assert!(split(&"a ".repeat(MAX_SCRIPT_LEN)).is_err());
    }
}
