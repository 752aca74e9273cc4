use futures_util::StreamExt as _;

use super::*;

#[test]
fn times_round_trip() {
    for t in [
        UNIX_EPOCH,
        UNIX_EPOCH + Duration::new(951_782_400, 5), // 2000-02-29
        UNIX_EPOCH + Duration::new(1_714_557_600, 123_456_789),
    ] {
        assert_eq!(parse_time(&format_time(t)), Some(t));
    }
    assert_eq!(
        format_time(UNIX_EPOCH + Duration::new(1_714_557_600, 1)),
        "2024-05-01T10:00:00.000000001Z"
    );
    assert_eq!(parse_time("nonsense"), None);
}

fn paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join("log.json"),
        dir.join("log.json.1"),
        dir.join("exit.json"),
    )
}

fn size(max_bytes: u64, max_files: u32) -> LogPolicy {
    LogPolicy {
        max_bytes,
        max_files,
        discard: false,
    }
}

async fn collect(dir: &Path, options: LogOptions) -> Vec<String> {
    let (log, _, exit) = paths(dir);
    stream(log, exit, options)
        .map(|l| String::from_utf8(l.unwrap().data).unwrap())
        .collect()
        .await
}

#[tokio::test]
async fn lines_split_flush_and_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (log, old, _) = paths(dir.path());
    let _ = old;
    let mut w = LogWriter::open(log, LogPolicy::default()).unwrap();
    w.write(LogSource::Stdout, b"one\ntw").unwrap();
    w.write(LogSource::Stderr, b"err\n").unwrap();
    w.write(LogSource::Stdout, b"o\nthree").unwrap();
    w.flush().unwrap();
    let all = collect(dir.path(), LogOptions::default()).await;
    assert_eq!(all, vec!["one\n", "err\n", "two\n", "three"]);
    let tail = collect(
        dir.path(),
        LogOptions {
            tail: Some(2),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(tail, vec!["two\n", "three"]);
    let future = collect(
        dir.path(),
        LogOptions {
            since: Some(SystemTime::now() + Duration::from_secs(60)),
            ..Default::default()
        },
    )
    .await;
    assert!(future.is_empty());
}

#[tokio::test]
async fn long_lines_split_and_rotation_keeps_one_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let (log, old, _) = paths(dir.path());
    let mut w = LogWriter::open(log.clone(), size(200, 2)).unwrap();
    w.write(LogSource::Stdout, &vec![b'x'; MAX_LINE + 1])
        .unwrap();
    w.flush().unwrap();
    for i in 0..10 {
        w.write(LogSource::Stdout, format!("line {i}\n").as_bytes())
            .unwrap();
    }
    assert!(old.exists());
    assert!(std::fs::metadata(&log).unwrap().len() <= 200);
    let all = collect(dir.path(), LogOptions::default()).await;
    assert_eq!(all.last().map(String::as_str), Some("line 9\n"));
    assert!(!all.iter().any(|l| l.len() > MAX_LINE));
}

#[tokio::test]
async fn follow_ends_after_exit_and_drain() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, exit) = paths(dir.path());
    let mut w = LogWriter::open(log.clone(), size(150, 2)).unwrap();
    w.write(LogSource::Stdout, b"first\n").unwrap();
    let reader = tokio::spawn({
        let dir = dir.path().to_path_buf();
        async move {
            collect(
                &dir,
                LogOptions {
                    follow: true,
                    ..Default::default()
                },
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    for i in 0..5 {
        // Small max: this rotates under the follower.
        w.write(LogSource::Stdout, format!("more {i}\n").as_bytes())
            .unwrap();
        // Slower than the follower polls: two rotations between its reads
        // would lose the middle file (as with Docker's json-file).
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    std::fs::write(&exit, "{}").unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.first().map(String::as_str), Some("first\n"));
    assert_eq!(got.last().map(String::as_str), Some("more 4\n"));
    assert_eq!(got.len(), 6, "{got:?}");
}

#[tokio::test]
async fn max_file_keeps_that_many_files_and_none_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, _) = paths(dir.path());
    let mut w = LogWriter::open(log.clone(), size(100, 3)).unwrap();
    for i in 0..40 {
        w.write(LogSource::Stdout, format!("line {i}\n").as_bytes())
            .unwrap();
    }
    assert_eq!(
        rotated_files(&log).len(),
        2,
        "max-file=3: the current and 2 old"
    );
    let all = collect(dir.path(), LogOptions::default()).await;
    assert_eq!(all.last().map(String::as_str), Some("line 39\n"));
    let n: Vec<usize> = all
        .iter()
        .map(|l| l.trim().trim_start_matches("line ").parse().unwrap())
        .collect();
    assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "in order: {n:?}");

    let none = tempfile::tempdir().unwrap();
    let (log, _, _) = paths(none.path());
    let mut w = LogWriter::open(
        log.clone(),
        LogPolicy {
            discard: true,
            ..LogPolicy::default()
        },
    )
    .unwrap();
    w.write(LogSource::Stdout, b"gone\n").unwrap();
    assert!(!log.exists());
}

#[test]
fn policies_as_docker_spells_them() {
    use shoal_proto::objects::LogDriver;
    let driver = |name: &str, opts: &[(&str, &str)]| LogDriver {
        name: name.into(),
        options: opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let p = LogPolicy::of(Some(&driver(
        "json-file",
        &[("max-size", "10k"), ("max-file", "3")],
    )))
    .unwrap();
    assert_eq!((p.max_bytes, p.max_files, p.discard), (10 << 10, 3, false));
    assert!(LogPolicy::of(Some(&driver("none", &[]))).unwrap().discard);
    assert_eq!(LogPolicy::of(None).unwrap(), LogPolicy::default());
    for bad in [
        driver("syslog", &[]),
        driver("json-file", &[("max-size", "lots")]),
        driver("json-file", &[("max-file", "0")]),
        driver("local", &[("colour", "blue")]),
    ] {
        assert!(
            LogPolicy::of(Some(&bad)).unwrap_err().is_rejection(),
            "{bad:?}"
        );
    }
}
