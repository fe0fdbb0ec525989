//! Tests: brace expansion.

use diffclip_data::datasets::*;

#[test]
fn brace_expansion_keeps_zero_padding_and_order() {
    let v = expand_braces("data/{00000..00099}.tar").unwrap();
    assert_eq!(v.len(), 100);
    assert_eq!(v[0], "data/00000.tar");
    assert_eq!(v[99], "data/00099.tar");
    assert_eq!(expand_braces("{8..11}").unwrap(), ["8", "9", "10", "11"]);
    assert_eq!(expand_braces("{09..11}").unwrap(), ["09", "10", "11"]);
    assert_eq!(expand_braces("{3..1}").unwrap(), ["3", "2", "1"]);
    assert_eq!(expand_braces("{0..10..5}").unwrap(), ["0", "5", "10"]);
    assert_eq!(
        expand_braces("s/{a,b{1..2}}-{x,y}").unwrap(),
        ["s/a-x", "s/a-y", "s/b1-x", "s/b1-y", "s/b2-x", "s/b2-y"]
    );
    assert_eq!(expand_braces("plain.tar").unwrap(), ["plain.tar"]);
    assert_eq!(expand_braces("{x}").unwrap(), ["{x}"]);
    assert_eq!(
        expand_braces("a.tar::b/{0..1}.tar").unwrap(),
        ["a.tar", "b/0.tar", "b/1.tar"]
    );
    for bad in [
        "data/{0..3.tar",
        "data/0..3}.tar",
        "{0..9999999}",
        "{0..4..0}",
    ] {
        let e = expand_braces(bad).unwrap_err();
        assert!(matches!(e, DataError::Pattern { .. }), "{bad}: {e}");
        assert!(e.to_string().contains(bad), "{e}");
    }
}
