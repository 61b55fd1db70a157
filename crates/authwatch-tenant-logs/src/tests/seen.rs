use authwatch_testkit::Scratch;

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn ids(l: &Loaded) -> Vec<&str> {
    l.entries.iter().map(|(id, _)| id.as_str()).collect()
}

#[test]
fn appended_ids_load_after_a_restart() {
    let d = Scratch::reserve("seen-load");
    let (mut s, l) = SeenFile::open(&d.0, "x.seen", HOUR, 100, t(0)).unwrap();
    assert!(l.entries.is_empty() && !l.torn && l.moved_aside.is_none());
    s.append(["a", "b"], t(1)).unwrap();
    s.append(["c"], t(2)).unwrap();
    drop(s);
    let (_, l) = SeenFile::open(&d.0, "x.seen", HOUR, 100, t(3)).unwrap();
    assert_eq!(ids(&l), ["a", "b", "c"]);
    assert_eq!(l.entries[2].1, t(2));
}

#[test]
fn load_keeps_the_window_and_the_bound() {
    let d = Scratch::reserve("seen-bound");
    let (mut s, _) = SeenFile::open(&d.0, "x.seen", HOUR, 3, t(0)).unwrap();
    s.append(["old"], t(0)).unwrap();
    s.append(["a", "b", "c", "d"], t(3000)).unwrap();
    drop(s);
    // `old` is past the window; of the rest, the newest 3.
    let (_, l) = SeenFile::open(&d.0, "x.seen", HOUR, 3, t(3600)).unwrap();
    assert_eq!(ids(&l), ["b", "c", "d"]);
}

#[test]
fn compacts_past_twice_the_bound() {
    let d = Scratch::reserve("seen-compact");
    let (mut s, _) = SeenFile::open(&d.0, "x.seen", HOUR, 4, t(0)).unwrap();
    for i in 0..8 {
        s.append([format!("id{i}").as_str()], t(i)).unwrap();
    }
    assert_eq!(s.lines(), 8);
    s.append(["id8"], t(8)).unwrap();
    assert_eq!(s.lines(), 4, "compacted to the bound");
    s.append(["id9"], t(9)).unwrap();
    let text = fs::read_to_string(s.path()).unwrap();
    assert_eq!(text.lines().count(), 6, "header + 5: {text}");
    assert!(!d.0.join("x.seen.tmp").exists());
    drop(s);
    let (_, l) = SeenFile::open(&d.0, "x.seen", HOUR, 4, t(10)).unwrap();
    assert_eq!(ids(&l), ["id6", "id7", "id8", "id9"]);
}

#[test]
fn a_torn_last_line_is_ignored_and_dropped() {
    let d = Scratch::reserve("seen-torn");
    let (mut s, _) = SeenFile::open(&d.0, "x.seen", HOUR, 100, t(0)).unwrap();
    s.append(["a"], t(1)).unwrap();
    let path = s.path();
    drop(s);
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"1700000002000 b").unwrap();
    drop(f);
    let (mut s, l) = SeenFile::open(&d.0, "x.seen", HOUR, 100, t(3)).unwrap();
    assert!(l.torn);
    assert_eq!(ids(&l), ["a"]);
    // The torn bytes are gone: the next line is not glued to them.
    s.append(["c"], t(4)).unwrap();
    drop(s);
    let (_, l) = SeenFile::open(&d.0, "x.seen", HOUR, 100, t(5)).unwrap();
    assert!(!l.torn);
    assert_eq!(ids(&l), ["a", "c"]);
}

#[test]
fn a_corrupt_file_is_moved_aside() {
    for body in [
        &b"not a seen file\n"[..],
        b"authwatch-seen v1\n1700000000000 a\ngarbage\n",
        b"authwatch-seen v1\nx1 a\n",
        b"authwatch-seen v1\n1700000000000 \xff\xfe\n",
        b"authwatch-seen v2\n",
    ] {
        let d = Scratch::reserve("seen-corrupt");
        fs::create_dir_all(&d.0).unwrap();
        fs::write(d.0.join("x.seen"), body).unwrap();
        let (mut s, l) = SeenFile::open(&d.0, "x.seen", HOUR, 100, t(0)).unwrap();
        assert!(l.entries.is_empty());
        let aside = l.moved_aside.expect("moved aside");
        assert_eq!(fs::read(&aside).unwrap(), body);
        s.append(["a"], t(1)).unwrap();
        drop(s);
        let (_, l) = SeenFile::open(&d.0, "x.seen", HOUR, 100, t(2)).unwrap();
        assert_eq!(ids(&l), ["a"]);
        assert!(l.moved_aside.is_none());
    }
}

#[test]
fn ids_that_cannot_be_a_line_are_not_written() {
    let d = Scratch::reserve("seen-odd");
    let (mut s, _) = SeenFile::open(&d.0, "x.seen", HOUR, 100, t(0)).unwrap();
    let long = "x".repeat(MAX_ID_BYTES + 1);
    s.append(["a\nb", "", long.as_str(), "with space", "ok"], t(1))
        .unwrap();
    drop(s);
    let (_, l) = SeenFile::open(&d.0, "x.seen", HOUR, 100, t(2)).unwrap();
    assert_eq!(ids(&l), ["with space", "ok"]);
}

#[test]
fn a_file_far_larger_than_the_bound_allows_is_moved_aside() {
    let d = Scratch::reserve("seen-huge");
    fs::create_dir_all(&d.0).unwrap();
    let mut body = String::from(HEADER);
    let line = format!("1700000000000 {}\n", "x".repeat(MAX_ID_BYTES));
    while (body.len() as u64) <= max_file_bytes(1) {
        body.push_str(&line);
    }
    fs::write(d.0.join("x.seen"), &body).unwrap();
    let (_, l) = SeenFile::open(&d.0, "x.seen", HOUR, 1, t(0)).unwrap();
    assert!(l.entries.is_empty());
    assert!(l.moved_aside.is_some());
}
