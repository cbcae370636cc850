//! Model-name matching for plugins that key tables by model: events carry names as providers
//! return them (`gpt-4o-2024-08-06`, `claude-sonnet-4-20250514`, `models/gemini-2.5-pro`,
//! `anthropic.claude-sonnet-4-20250514-v1:0`, `meta-llama/Llama-3.3-70B-Instruct-Turbo`), tables
//! hold one canonical name per model.
//!
//! [`ModelTable::get`] tries, in order: the normalized name; the name without its date or version
//! suffix; any table entry whose own undated name matches; and the same three on the last `/`
//! segment.

use std::collections::HashMap;

/// The vendor prefixes of Bedrock model ids (`anthropic.claude-…`, `meta.llama…`).
const BEDROCK_VENDORS: [&str; 7] = [
    "anthropic.",
    "meta.",
    "openai.",
    "mistral.",
    "cohere.",
    "deepseek.",
    "google.",
];

/// Lowercases and strips provider prefixes (`openai/`, `models/`, `anthropic.`, `us.anthropic.`,
/// `us.meta.`).
pub fn normalize(model: &str) -> String {
    let mut m = model.trim().to_ascii_lowercase();
    loop {
        let before = m.len();
        for p in [
            "openai/",
            "anthropic/",
            "google/",
            "gemini/",
            "models/",
            "mistral/",
            "mistralai/",
            "deepseek/",
            "cohere/",
            "meta/",
            "together/",
            "together_ai/",
            "groq/",
            "bedrock/",
            "vertex_ai/",
            "azure/",
        ] {
            if let Some(rest) = m.strip_prefix(p) {
                m = rest.to_string();
            }
        }
        // Bedrock's cross-region inference profiles: `us.meta.llama3-3-70b-instruct-v1:0`.
        for region in ["us.", "eu.", "apac.", "global.", "au.", "jp.", "us-gov."] {
            if let Some(rest) = m.strip_prefix(region)
                && BEDROCK_VENDORS.iter().any(|v| rest.starts_with(v))
            {
                m = rest.to_string();
            }
        }
        for vendor in BEDROCK_VENDORS {
            if let Some(rest) = m.strip_prefix(vendor) {
                m = rest.to_string();
            }
        }
        if m.len() == before {
            return m;
        }
    }
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Strips one date or version suffix: `-2024-08-06`, `-20250514`, `-08-2024`, `-0125`,
/// `@20250514`, `-v1:0`, `-latest`, `-001`. `None` when there is none.
pub fn strip_suffix_once(name: &str) -> Option<&str> {
    if let Some(rest) = name.strip_suffix("-latest") {
        return Some(rest);
    }
    if let Some((head, tail)) = name.rsplit_once('@')
        && (digits(tail) || tail.starts_with("v"))
    {
        return Some(head);
    }
    if let Some((head, tail)) = name.rsplit_once("-v")
        && tail.contains(':')
        && tail.split(':').all(digits)
    {
        return Some(head);
    }
    let (head, tail) = name.rsplit_once('-')?;
    if digits(tail) && matches!(tail.len(), 3 | 4 | 8) {
        // -YYYY-MM-DD and -MM-YYYY: two more numeric parts before
        if (tail.len() == 4 || tail.len() == 3)
            && let Some((h2, mid)) = head.rsplit_once('-')
            && digits(mid)
            && mid.len() == 2
        {
            if let Some((h3, year)) = h2.rsplit_once('-')
                && digits(year)
                && year.len() == 4
            {
                return Some(h3); // -YYYY-MM-DD where tail is DD? (tail.len()==2 never here)
            }
            return Some(h2); // -MM-YYYY
        }
        return Some(head);
    }
    if digits(tail) && tail.len() == 2 {
        // -YYYY-MM-DD
        if let Some((h2, mm)) = head.rsplit_once('-')
            && digits(mm)
            && mm.len() == 2
            && let Some((h3, yyyy)) = h2.rsplit_once('-')
            && digits(yyyy)
            && yyyy.len() == 4
        {
            return Some(h3);
        }
    }
    None
}

/// Strips every date and version suffix.
pub fn base_name(name: &str) -> &str {
    let mut n = name;
    while let Some(s) = strip_suffix_once(n) {
        n = s;
    }
    n
}

/// A table of models keyed by canonical name, with alias lookup.
#[derive(Debug)]
pub struct ModelTable<T> {
    items: Vec<T>,
    exact: HashMap<String, usize>,
    undated: HashMap<String, usize>,
}

impl<T> Default for ModelTable<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            exact: HashMap::new(),
            undated: HashMap::new(),
        }
    }
}

impl<T> ModelTable<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `name`. Insert in ascending name order so that, among dated versions,
    /// the newest answers for the undated name.
    pub fn insert(&mut self, name: &str, item: T) {
        let name = normalize(name);
        let i = self.items.len();
        self.items.push(item);
        let base = base_name(&name).to_string();
        self.undated.insert(base.clone(), i);
        if let Some((_, last)) = base.rsplit_once('/') {
            self.undated.insert(last.to_string(), i);
        }
        if let Some((_, last)) = name.rsplit_once('/') {
            self.exact.entry(last.to_string()).or_insert(i);
        }
        self.exact.insert(name, i);
    }

    pub fn len(&self) -> usize {
        self.exact.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The entry for a model name as an event carries it.
    pub fn get(&self, model: &str) -> Option<&T> {
        let n = normalize(model);
        self.lookup(&n)
            .or_else(|| n.rsplit_once('/').and_then(|(_, last)| self.lookup(last)))
    }

    fn lookup(&self, n: &str) -> Option<&T> {
        if let Some(&i) = self.exact.get(n) {
            return Some(&self.items[i]);
        }
        let base = base_name(n);
        self.exact
            .get(base)
            .or_else(|| self.undated.get(base))
            .map(|&i| &self.items[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_dates_and_versions() {
        for (name, base) in [
            ("gpt-4o-2024-08-06", "gpt-4o"),
            ("claude-sonnet-4-20250514", "claude-sonnet-4"),
            ("command-r-08-2024", "command-r"),
            ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
            ("claude-sonnet-4@20250514", "claude-sonnet-4"),
            ("claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
            ("mistral-large-latest", "mistral-large"),
            ("gemini-1.5-pro-001", "gemini-1.5-pro"),
            ("gpt-4o", "gpt-4o"),
            ("llama-3.3-70b", "llama-3.3-70b"),
            ("o3", "o3"),
        ] {
            assert_eq!(base_name(name), base, "{name}");
        }
    }

    #[test]
    fn finds_aliases() {
        let mut t = ModelTable::new();
        for (n, v) in [
            ("claude-sonnet-4-20250514", 1),
            ("gpt-4o", 2),
            ("gpt-4o-2024-05-13", 3),
            ("meta-llama/llama-3.3-70b-instruct-turbo", 4),
            ("mistral-large-latest", 5),
        ] {
            t.insert(n, v);
        }
        assert_eq!(t.get("gpt-4o-2024-08-06"), Some(&2));
        assert_eq!(t.get("gpt-4o-2024-05-13"), Some(&3));
        assert_eq!(t.get("GPT-4o"), Some(&2));
        assert_eq!(t.get("openai/gpt-4o"), Some(&2));
        assert_eq!(t.get("claude-sonnet-4"), Some(&1));
        assert_eq!(t.get("claude-sonnet-4-20250514"), Some(&1));
        assert_eq!(
            t.get("us.anthropic.claude-sonnet-4-20250514-v1:0"),
            Some(&1)
        );
        assert_eq!(t.get("Llama-3.3-70B-Instruct-Turbo"), Some(&4));
        assert_eq!(
            t.get("together/meta-llama/Llama-3.3-70B-Instruct-Turbo"),
            Some(&4)
        );
        assert_eq!(t.get("mistral-large"), Some(&5));
        assert_eq!(t.get("mistral-large-2411"), Some(&5));
        assert_eq!(t.get("gpt-5"), None);
        t.insert("llama3-3-70b-instruct", 6);
        assert_eq!(
            t.get("us.meta.llama3-3-70b-instruct-v1:0"),
            Some(&6),
            "a Bedrock inference profile of any vendor"
        );
        assert_eq!(
            t.get("bedrock/eu.meta.llama3-3-70b-instruct-v1:0"),
            Some(&6)
        );
    }
}
