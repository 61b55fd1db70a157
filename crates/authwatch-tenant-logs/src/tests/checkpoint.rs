use authwatch_testkit::Scratch;

use super::*;

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn absent_then_stored_then_replaced() {
    let d = Scratch::reserve("checkpoint-roundtrip");
    let c = Checkpoint::new(d.0.join("nested"), "auth0_logs.cursor");
    assert_eq!(c.load().unwrap(), Loaded::default());
    c.store("90020230101000000000000000000000000000000000000000000001")
        .unwrap();
    assert_eq!(
        c.load().unwrap().cursor.as_deref(),
        Some("90020230101000000000000000000000000000000000000000000001")
    );
    c.store("https://x.okta.com/api/v1/logs?after=abc").unwrap();
    let again = Checkpoint::new(d.0.join("nested"), "auth0_logs.cursor");
    assert_eq!(
        again.load().unwrap().cursor.as_deref(),
        Some("https://x.okta.com/api/v1/logs?after=abc")
    );
    // No temp file is left behind.
    assert_eq!(entries(&d.0.join("nested")), vec!["auth0_logs.cursor"]);
}

#[test]
fn a_corrupt_file_is_moved_aside_and_reads_as_absent() {
    for (i, bad) in [
        &b"{\"version\":1,\"cursor\":\"9002"[..],         // torn
        &b"\x00\x00\x00\x00"[..],                         // zeroed blocks
        &b"{\"version\":2,\"cursor\":\"x\"}"[..],         // a future format
        &b"{\"version\":1,\"cursor\":\"\"}"[..],          // empty cursor
        &b"{\"version\":1,\"cursor\":\"x\",\"y\":1}"[..], // unknown field
        &b""[..],
    ]
    .into_iter()
    .enumerate()
    {
        let d = Scratch::reserve(&format!("checkpoint-corrupt{i}"));
        fs::create_dir_all(&d.0).unwrap();
        fs::write(d.0.join("c"), bad).unwrap();
        let c = Checkpoint::new(&d.0, "c");
        let loaded = c.load().unwrap();
        assert_eq!(loaded.cursor, None, "case {i}");
        let aside = loaded.moved_aside.expect("moved aside");
        assert_eq!(fs::read(&aside).unwrap(), bad, "case {i}: kept as it was");
        let names = entries(&d.0);
        assert_eq!(names.len(), 1, "case {i}: {names:?}");
        assert!(names[0].starts_with("c.corrupt-"), "case {i}: {names:?}");
        // Then it works again.
        c.store("abc").unwrap();
        assert_eq!(c.load().unwrap().cursor.as_deref(), Some("abc"));
    }
}

#[test]
fn an_oversized_file_is_corrupt() {
    let d = Scratch::reserve("checkpoint-big");
    fs::create_dir_all(&d.0).unwrap();
    fs::write(d.0.join("c"), vec![b' '; (MAX_FILE_BYTES + 10) as usize]).unwrap();
    let loaded = Checkpoint::new(&d.0, "c").load().unwrap();
    assert_eq!(loaded.cursor, None);
    assert!(loaded.moved_aside.is_some());
}

#[test]
fn a_stale_temp_file_from_a_crash_is_ignored_and_overwritten() {
    let d = Scratch::reserve("checkpoint-tmp");
    let c = Checkpoint::new(&d.0, "c");
    c.store("one").unwrap();
    fs::write(d.0.join("c.tmp"), b"{\"version\":1,\"cursor\":\"half").unwrap();
    assert_eq!(c.load().unwrap().cursor.as_deref(), Some("one"));
    c.store("two").unwrap();
    assert_eq!(c.load().unwrap().cursor.as_deref(), Some("two"));
    assert_eq!(entries(&d.0), vec!["c"]);
}

#[test]
fn errors_are_typed_and_hold_no_cursor() {
    let d = Scratch::reserve("checkpoint-errors");
    let c = Checkpoint::new(&d.0, "c");
    assert!(matches!(
        c.store(""),
        Err(CheckpointError::BadCursor { .. })
    ));
    // The directory's place is taken by a file: it cannot be created.
    fs::write(&d.0, b"not a directory").unwrap();
    let err = c.store("secret-looking-cursor").unwrap_err();
    assert!(matches!(err, CheckpointError::CreateDir { .. }), "{err:?}");
    assert!(!err.to_string().contains("secret-looking-cursor"), "{err}");
    fs::remove_file(&d.0).unwrap();
}
