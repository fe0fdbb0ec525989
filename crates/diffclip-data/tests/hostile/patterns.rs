//! Pathological shard patterns.

use super::*;

#[test]
fn pathological_brace_patterns_are_errors_not_crashes() {
    let check = |pattern: String, want: &'static str| {
        let shown = pattern.chars().take(40).collect::<String>();
        let err = within(60, "expand_braces", move || {
            expand_braces(&pattern).map(|v| v.len())
        });
        let err = match err {
            Err(e @ DataError::Pattern { .. }) => e.to_string(),
            other => panic!("{shown}: {other:?}"),
        };
        assert!(err.contains(want), "{shown}: {err}");
        assert!(err.len() < 1000, "a long pattern is quoted short: {err}");
    };
    // 60,000 nested groups (was a stack overflow), balanced or not.
    check(
        format!("{}x{}", "{".repeat(60_000), "}".repeat(60_000)),
        "nested",
    );
    check("{".repeat(60_000), "nested");
    check(
        format!("{}0..1{}", "{a,".repeat(60_000), "}".repeat(60_000)),
        "nested",
    );
    // 60,000 groups one after the other.
    check("{a}".repeat(60_000), "groups");
    check("{0..1}".repeat(MAX_BRACE_GROUPS + 1), "groups");
    // Too many names, or too many bytes of names.
    check("{a,b}".repeat(30), "names");
    check("{0..18446744073709551615}".into(), "names");
    check("{0..99999999999999999999999}".into(), "bad number");
    check(format!("{}{{0..999999}}", "x".repeat(1000)), "bytes");
    check(format!("{{{}..99999}}", "0".repeat(5000)), "bytes");
    check(format!("{}::{{0..999999}}", "{0..999999}"), "names");

    // At the limits, patterns still expand.
    let deep = format!(
        "{}b{}",
        "{a,".repeat(MAX_BRACE_DEPTH),
        "}".repeat(MAX_BRACE_DEPTH)
    );
    assert_eq!(expand_braces(&deep).unwrap().len(), MAX_BRACE_DEPTH + 1);
    let too_deep = format!("{{{deep}}}");
    assert!(expand_braces(&too_deep).is_err());
    let groups = "{a}".repeat(MAX_BRACE_GROUPS);
    assert_eq!(expand_braces(&groups).unwrap(), std::slice::from_ref(&groups));
    assert_eq!(expand_braces("{0..999999}").unwrap().len(), MAX_EXPANSION);
}
