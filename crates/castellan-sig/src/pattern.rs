//! OpenSSH pattern matching (`match.c`): `*` and `?` wildcards, comma-separated
//! pattern-lists with `!` negation.

/// OpenSSH refuses to match a sub-pattern of 1023 bytes or more (its buffer is 1024).
const MAX_SUBPATTERN: usize = 1023;

/// `match_pattern`: does `s` match the wildcard pattern `p` (`*` any run, `?` any one
/// character)? Case-sensitive. Iterative with one backtrack point, so it runs in
/// O(len(s) * len(p)) at worst, never exponentially.
pub(crate) fn match_pattern(s: &str, p: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = p.chars().collect();
    let (mut si, mut pi) = (0usize, 0usize);
    // Position of the last `*` seen in p, and the position in s it currently absorbs up to.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == '?' || c == s[si] => {
                si += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The outcome of matching a name against a pattern-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListMatch {
    /// A negated sub-pattern matched: the name is excluded whatever else matches.
    Negated,
    /// No sub-pattern matched.
    NoMatch,
    /// A positive sub-pattern matched and no negated one did.
    Positive,
}

/// `match_pattern_list` over already-split sub-patterns (each possibly `!`-prefixed).
pub(crate) fn match_list<'a>(name: &str, patterns: impl IntoIterator<Item = &'a str>) -> ListMatch {
    let mut positive = false;
    for pattern in patterns {
        let (negated, sub) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        if sub.len() >= MAX_SUBPATTERN {
            // OpenSSH returns "no match" for the whole list here.
            return ListMatch::NoMatch;
        }
        if match_pattern(name, sub) {
            if negated {
                return ListMatch::Negated;
            }
            positive = true;
        }
    }
    if positive {
        ListMatch::Positive
    } else {
        ListMatch::NoMatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(match_pattern("alice@example.com", "*@example.com"));
        assert!(match_pattern("alice", "al?ce"));
        assert!(match_pattern("", "*"));
        assert!(match_pattern("", ""));
        assert!(!match_pattern("a", ""));
        assert!(!match_pattern("alice", "al?e"));
        assert!(match_pattern("abcabc", "*abc"));
        assert!(match_pattern("aXbXc", "a*b*c"));
        assert!(!match_pattern("aXbXd", "a*b*c"));
        assert!(!match_pattern("Alice", "alice"));
        // A pathological pattern stays fast.
        let s = "a".repeat(5000);
        let p = format!("{}b", "*a".repeat(200));
        assert!(!match_pattern(&s, &p));
    }

    #[test]
    fn lists_and_negation() {
        let list = ["*@example.com", "!mallory@example.com"];
        assert_eq!(match_list("alice@example.com", list), ListMatch::Positive);
        assert_eq!(match_list("mallory@example.com", list), ListMatch::Negated);
        assert_eq!(match_list("bob@other.org", list), ListMatch::NoMatch);
        // The negation wins wherever it is in the list.
        assert_eq!(
            match_list("mallory@example.com", ["!mallory@example.com", "*"]),
            ListMatch::Negated
        );
        // A negation alone never yields a positive match.
        assert_eq!(match_list("bob", ["!alice"]), ListMatch::NoMatch);
    }
}
