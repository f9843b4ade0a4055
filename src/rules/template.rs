//! Checks of alert label and annotation templates (Go text/template as Prometheus uses it), done
//! at load time so a typo fails `rules check`, not the first alert at 3 a.m.

/// Functions a template may call. The first group is what community rules use and prismwatch
/// renders; the rest are Prometheus template functions refused until rendering supports them.
pub const SUPPORTED_FUNCTIONS: [&str; 14] = [
    "humanize",
    "humanizePercentage",
    "humanizeDuration",
    "humanize1024",
    "humanizeTimestamp",
    "printf",
    "toUpper",
    "toLower",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
];

/// Words that are template syntax, not function calls.
const KEYWORDS: [&str; 8] = ["if", "else", "end", "range", "with", "and", "or", "not"];

/// Checks a template's actions: balanced `{{ }}`, and only supported functions.
pub fn check(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed `{{{{` in template `{template}`"))?;
        let action = after[..end]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        for command in action.split('|') {
            // The function of `{{ if gt $value 1 }}` is the word after the keywords.
            let word = command
                .split_whitespace()
                .find(|w| !KEYWORDS.contains(w))
                .unwrap_or("");
            let is_call = word.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
            if is_call && !SUPPORTED_FUNCTIONS.contains(&word) {
                return Err(format!(
                    "template function `{word}` is not supported (supported: {})",
                    SUPPORTED_FUNCTIONS.join(", ")
                ));
            }
        }
        rest = &after[end + 2..];
    }
    if rest.contains("}}") {
        return Err(format!("`}}}}` without `{{{{` in template `{template}`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn community_forms_pass_and_unknown_functions_fail() {
        assert!(check("{{ $labels.instance }} at {{ $value | humanizePercentage }}").is_ok());
        assert!(check("VALUE = {{ $value }}\n  LABELS = {{ $labels }}").is_ok());
        assert!(check(r#"{{ printf "%.2f" $value }} {{ $value | printf "%.0f" }}"#).is_ok());
        assert!(check("{{ if gt $value 1.0 }}big{{ end }}").is_ok());
        assert!(check("{{ if nosuch $value }}x{{ end }}").is_err());
        assert!(check("{{ $value | query }}").is_err());
        assert!(check("{{ $value ").is_err());
    }
}
