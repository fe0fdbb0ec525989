//! `search --approximate` end to end: the HNSW index is built beside synthetic shards on first
//! use (recall@10 printed), reused after, rebuilt when the shards change, and a damaged index
//! is a clear error; its hits match exact search's in `--json` form. Serving: standard input
//! line by line, and HTTP (`--listen`).

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{JsonLines, Server, example, fixture, tmpdir};
use diffclip::clip::files::{F32Tensor, write_safetensors};
use diffclip::eval::stats::SplitMix64;

/// Writes shard `k` of `n` rows of 32 values (the tiny model's embedding size) around 20
/// random centres, named `row<first + i>.png`.
fn write_shard(dir: &Path, k: usize, first: usize, n: usize, seed: u64) {
    let dim = 32;
    let mut rng = SplitMix64::new(seed);
    let mut uniform = move || ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
    let centres: Vec<f32> = (0..20 * dim).map(|_| uniform()).collect();
    let rows: Vec<f32> = (0..n * dim).map(|i| centres[((i / dim) * 7 % 20) * dim + i % dim] + 0.3 * uniform()).collect();
    let paths: Vec<String> = (first..first + n).map(|i| format!("row{i}.png")).collect();
    let meta = [("paths".to_string(), serde_json::to_string(&paths).unwrap())].into();
    let t = F32Tensor { name: "image_embed".into(), shape: vec![n, dim], data: &rows };
    write_safetensors(&dir.join(format!("embeddings-{k:05}.safetensors")), &[t], meta).unwrap();
}

/// `search` with the tiny model on `index`.
fn search_cmd(index: &Path) -> Command {
    let mut c = Command::new(example("search"));
    c.args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(fixture("diffclip_tiny/model.safetensors")).arg("--index").arg(index);
    c
}

fn search(index: &Path, extra: &[&str]) -> Output {
    search_cmd(index)
        .args(["--text", "a red square", "--top-k", "10", "--json"])
        .args(extra)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> (Vec<serde_json::Value>, String) {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    let hits = String::from_utf8(o.stdout.clone()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (hits, err)
}

#[test]
fn approximate_search_builds_reuses_and_rebuilds_its_index() {
    let index = tmpdir("search-ann", "shards");
    for k in 0..4 {
        write_shard(&index, k, k * 500, 500, k as u64);
    }
    let (exact, _) = ok(&search(&index, &[]));
    let (approx, err) = ok(&search(&index, &["--approximate"]));
    assert!(err.contains("built the approximate index") && err.contains("there was none"), "{err}");
    let recall: f64 = err.split("recall@10 against exact search: ").nth(1).and_then(|s| s.split_whitespace().next()).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{err}"));
    assert!(recall >= 0.9, "{err}");
    for f in ["index.hnsw.graph", "index.hnsw.data", "index.hnsw.json"] {
        assert!(index.join(f).is_file(), "{f}");
    }
    // Same JSON as exact search: rank, score, path; nearly the same hits, the same cosines.
    assert_eq!(approx.len(), 10);
    for (i, h) in approx.iter().enumerate() {
        let keys: HashSet<&str> = h.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, HashSet::from(["rank", "score", "path"]));
        assert_eq!(h["rank"], i + 1);
    }
    let exact_paths: HashSet<&str> = exact.iter().map(|h| h["path"].as_str().unwrap()).collect();
    let common: Vec<&serde_json::Value> = approx.iter().filter(|h| exact_paths.contains(h["path"].as_str().unwrap())).collect();
    assert!(common.len() >= 8, "approximate {approx:?}\nexact {exact:?}");
    for h in common {
        let e = exact.iter().find(|e| e["path"] == h["path"]).unwrap();
        assert!((e["score"].as_f64().unwrap() - h["score"].as_f64().unwrap()).abs() < 1e-5, "{h} vs {e}");
    }
    // Reused as saved: no build, the same answer.
    let (again, err) = ok(&search(&index, &["--approximate"]));
    assert!(!err.contains("built"), "{err}");
    assert_eq!(again, approx);
    // A shard written again (its middle rows could differ unseen by the hashes): rebuilt. Its
    // time set apart, so that a filesystem of coarse timestamps sees the change too.
    write_shard(&index, 1, 500, 500, 1);
    let shard = std::fs::File::options().write(true).open(index.join("embeddings-00001.safetensors")).unwrap();
    shard.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000)).unwrap();
    let (_, err) = ok(&search(&index, &["--approximate"]));
    assert!(err.contains("stale: embeddings-00001.safetensors changed"), "{err}");
    // A new shard: rebuilt, saying why.
    write_shard(&index, 4, 2000, 100, 9);
    let (_, err) = ok(&search(&index, &["--approximate", "--ef-search", "128"]));
    assert!(err.contains("stale: embeddings-00004.safetensors added"), "{err}");
    // A damaged index: a clear error, not a panic, until rebuilt.
    std::fs::write(index.join("index.hnsw.graph"), b"not a graph").unwrap();
    let o = search(&index, &["--approximate"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("index.hnsw.graph") && err.contains("corrupt index") && err.contains("--rebuild-index") && !err.contains("panicked"), "{err}");
    let (_, err) = ok(&search(&index, &["--rebuild-index"]));
    assert!(err.contains("built the approximate index") && err.contains("recall@10"), "{err}");
    // Exact search is still the default and ignores the index files.
    assert_eq!(ok(&search(&index, &[])).0.len(), 10);
    // Build settings the kept index lacks are said to need a rebuild; without the index, refused.
    let (_, err) = ok(&search(&index, &["--approximate", "--hnsw-m", "8"]));
    assert!(err.contains("the index kept was built with M 16") && err.contains("--rebuild-index"), "{err}");
    let o = search(&index, &["--ef-search", "64"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--ef-search applies to the approximate index"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_file_of_queries_runs_against_one_opened_index() {
    let index = tmpdir("search-ann", "queries");
    for k in 0..2 {
        write_shard(&index, k, k * 300, 300, 20 + k as u64);
    }
    let queries = index.join("queries.txt");
    std::fs::write(&queries, "a red square\n\n  a blue circle  \n").unwrap();
    // Without any query, the error names every way to give one.
    let none = search_cmd(&index).output().unwrap();
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(none.status.code() == Some(2) && ["--text", "--queries", "--image", "--listen"].iter().all(|f| err.contains(f)), "{err}");
    let run = |extra: &[&str]| {
        search_cmd(&index)
            .arg("--queries")
            .arg(&queries)
            .args(["--top-k", "5", "--json"])
            .args(extra)
            .output()
            .unwrap()
    };
    let (approx, err) = ok(&run(&["--approximate"]));
    assert_eq!(err.matches("built the approximate index").count(), 1, "one index for both queries: {err}");
    let (exact, _) = ok(&run(&[]));
    for hits in [&approx, &exact] {
        assert_eq!(hits.len(), 10, "5 hits for each of the 2 non-blank lines");
        for (i, h) in hits.iter().enumerate() {
            assert_eq!(h["query"], if i < 5 { "a red square" } else { "a blue circle" });
            assert_eq!(h["rank"], i % 5 + 1);
        }
    }
    // The first query's exact hits are those of `--text` with the same words, to the bit:
    // batched with a longer query or alone, a caption embeds the same.
    let (single, _) = ok(&search(&index, &[]));
    for (q, s) in exact[..5].iter().zip(&single) {
        assert_eq!((&q["path"], &q["score"]), (&s["path"], &s["score"]));
    }
    std::fs::write(&queries, "\n \n").unwrap();
    let o = run(&[]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no queries"));
}

/// `search --queries - …` on `index`, its standard streams piped.
fn serve(index: &Path, extra: &[&str]) -> std::process::Child {
    search_cmd(index)
        .args(["--queries", "-", "--top-k", "3", "--json"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `--queries -` serves standard input: each line is answered while the input is still open,
/// with the file form's hits; a closed output ends it quietly; an over-long line is an error
/// naming it.
#[test]
fn standard_input_is_answered_line_by_line() {
    let index = tmpdir("search-ann", "stdin");
    for k in 0..2 {
        write_shard(&index, k, k * 300, 300, 30 + k as u64);
    }
    let mut child = serve(&index, &["--approximate"]);
    let mut stdin = child.stdin.take().unwrap();
    let lines = JsonLines::new(child.stdout.take().unwrap());
    let answers = |n: usize| -> Vec<serde_json::Value> { (0..n).map(|_| lines.next()).collect() };
    writeln!(stdin, "a red square").unwrap();
    stdin.flush().unwrap();
    let mut served = answers(3);
    writeln!(stdin, "\n   a blue circle  ").unwrap();
    stdin.flush().unwrap();
    served.extend(answers(3));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("built the approximate index").count(), 1, "{err}");
    for (i, h) in served.iter().enumerate() {
        assert_eq!(h["query"], if i < 3 { "a red square" } else { "a blue circle" });
        assert_eq!(h["rank"], i % 3 + 1);
    }
    // The same hits, to the bit, as the same lines given as a file.
    let queries = index.join("queries.txt");
    std::fs::write(&queries, "a red square\na blue circle\n").unwrap();
    let o = search_cmd(&index).arg("--queries").arg(&queries).args(["--top-k", "3", "--json", "--approximate"]).output().unwrap();
    assert_eq!(ok(&o).0, served);

    // A closed output ends the program quietly, with success.
    let mut child = serve(&index, &["--approximate"]);
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().unwrap();
    let _ = writeln!(stdin, "a red square\na blue circle");
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("panicked") && !err.contains("error"), "{err}");

    // An over-long line is an error naming it, after the lines before it were answered.
    let mut child = serve(&index, &[]);
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = writeln!(stdin, "a red square");
        let _ = stdin.write_all(&vec![b'a'; (diffclip::data::files::MAX_LINE_BYTES + 1) as usize]);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("standard input:2: longer than 16777216 bytes") && !err.contains("panicked"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
}

/// `--listen` answers text and image searches with the command line's hits, to the bit; its
/// embeddings are the queries'; bad requests get a 4xx naming the problem and the server goes on.
#[test]
fn http_serves_the_command_lines_answers() {
    let index = tmpdir("search-ann", "http");
    for k in 0..2 {
        write_shard(&index, k, k * 300, 300, 40 + k as u64);
    }
    let image = fixture("preprocess/images/china.jpg");
    let server = Server::start(search_cmd(&index));
    let (status, text) = server.call("POST", "/search/text?top_k=10", b"  a red square\n");
    assert_eq!(status, 200, "{text}");
    assert_eq!(text["query"], "a red square");
    let hits = text["hits"].as_array().unwrap();
    assert_eq!(hits, &ok(&search(&index, &[])).0);
    let (status, by_image) = server.call("POST", "/search/image?top_k=4", &std::fs::read(&image).unwrap());
    assert_eq!(status, 200, "{by_image}");
    let o = search_cmd(&index).arg("--image").arg(&image).args(["--top-k", "4", "--json"]).output().unwrap();
    assert_eq!(by_image["hits"].as_array().unwrap(), &ok(&o).0);
    assert!(by_image.get("query").is_none());

    // The text's embedding, as a unit vector, gives the hits' cosines.
    let (status, embed) = server.call("POST", "/embed/text?normalize=true", b"a red square");
    assert_eq!(status, 200, "{embed}");
    let unit: Vec<f64> = embed["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(unit.len(), 32);
    assert!((unit.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-6);
    let rows = common::shard_rows(&index, "image_embed");
    for hit in hits {
        let row = &rows.iter().find(|(p, _)| *p == hit["path"]).unwrap().1;
        let norm = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
        let cosine: f64 = row.iter().zip(&unit).map(|(&r, u)| f64::from(r) * u / norm).sum();
        assert!((cosine - hit["score"].as_f64().unwrap()).abs() < 1e-5, "{hit} vs {cosine}");
    }
    let (_, raw) = server.call("POST", "/embed/text", b"a red square");
    let raw: Vec<f64> = raw["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let norm = raw.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!(norm > 0.0 && (norm - 1.0).abs() > 1e-3, "unnormalised unless asked: {norm}");
    assert!(raw.iter().zip(&unit).all(|(r, u)| (r / norm - u).abs() < 1e-6));
    let (status, embed) = server.call("POST", "/embed/image", &std::fs::read(&image).unwrap());
    assert_eq!((status, embed["embedding"].as_array().map(Vec::len)), (200, Some(32)));

    for (method, target, body, want, says) in [
        ("POST", "/search/image", &b"not an image"[..], 422, "request body"),
        ("POST", "/embed/image", b"", 400, "no image"),
        ("POST", "/search/text", b" \n ", 400, "no query text"),
        ("POST", "/search/text", b"\xff\xfe", 400, "not UTF-8"),
        ("POST", "/search/text?top_k=x", b"a dog", 400, "top_k"),
        ("POST", "/search/text?top_k=0", b"a dog", 400, "top_k must be 1"),
        ("POST", "/search/image?top_k=0", b"not an image", 400, "top_k must be 1"),
        ("POST", "/search/text", &[b'a'; 65537], 413, "over the limit of 65536"),
        ("POST", "/embed/text?normalize=maybe", b"a dog", 400, "normalize"),
        ("POST", "/embed/text?normalize=true&normalize=false", b"a dog", 400, "normalize is given twice"),
        ("POST", "/search/text?k=3", b"a dog", 400, "unknown query parameter \"k\": /search/text takes top_k"),
        ("GET", "/health?verbose=1", b"", 400, "/health takes no query parameters"),
        ("GET", "/search/text", b"", 405, "POST"),
        ("GET", "/search", b"", 404, "/search/text"),
    ] {
        let (status, answer) = server.call(method, target, body);
        assert_eq!(status, want, "{method} {target}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{method} {target}: {answer}");
    }
    let head = server.call_head("GET", "/search/text", b"");
    assert!(head.starts_with("HTTP/1.1 405 ") && head.contains("\r\nAllow: POST\r\n"), "{head}");
    let head = server.call_head("POST", "/health", b"");
    assert!(head.starts_with("HTTP/1.1 405 ") && head.contains("\r\nAllow: GET, HEAD\r\n"), "{head}");
    // Requests arriving together are embedded as one batch (on flex, to the same bits as alone),
    // each answered with its own hits.
    let files: Vec<std::path::PathBuf> = ["china.jpg", "flower.jpg", "gray_123x457.png", "rgba_300x200.png"].iter().map(|f| fixture(&format!("preprocess/images/{f}"))).collect();
    let queries: Vec<(&str, Vec<u8>)> = ["a red square", "a blue circle on a long white table", "dog"]
        .iter()
        .map(|t| ("/search/text?top_k=5", t.as_bytes().to_vec()))
        .chain(files.iter().map(|f| ("/search/image?top_k=5", std::fs::read(f).unwrap())))
        .collect();
    let alone: Vec<_> = queries.iter().map(|(target, body)| server.call("POST", target, body)).collect();
    // Rounds of concurrent calls until the server has batched some (it batches what arrives
    // while it is busy, so how many land together varies).
    for round in 1..=10 {
        let together: Vec<_> = std::thread::scope(|scope| {
            let calls: Vec<_> = queries.iter().cycle().take(3 * queries.len()).map(|(target, body)| scope.spawn(|| server.call("POST", target, body))).collect();
            calls.into_iter().map(|c| c.join().unwrap()).collect()
        });
        for (i, answer) in together.iter().enumerate() {
            assert_eq!(answer, &alone[i % queries.len()], "{}", queries[i % queries.len()].0);
        }
        if server.log().iter().any(|l| l.contains("(batch of")) {
            break;
        }
        assert!(round < 10, "no batch in 10 rounds of 21 concurrent requests: {:?}", server.log());
    }

    // A name a web page could rebind is refused; IP addresses are served.
    assert_eq!(server.call_as("rebound.example", "GET", "/health", b"").0, 403);
    let (status, health) = server.call_as(&server.address().to_string(), "GET", "/health", b"");
    assert_eq!((status, &health["rows"]), (200, &serde_json::json!(600)));
    drop(server);

    // Without --index: the same embeddings, and no searches.
    let mut embedding_only = Command::new(example("search"));
    embedding_only.args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(fixture("diffclip_tiny/model.safetensors"));
    let server = Server::start(embedding_only);
    let (status, alone) = server.call("POST", "/embed/text", b"a red square");
    let alone: Vec<f64> = alone["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!((status, &alone), (200, &raw));
    let (status, answer) = server.call("POST", "/search/text", b"a red square");
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("no index to search"), "{answer}");
    assert_eq!(server.call("GET", "/health", b""), (200, serde_json::json!({ "status": "ok" })));
    // SIGTERM: a request half sent is still answered, then the program ends with 0.
    let mut server = server;
    let mut half = std::net::TcpStream::connect(server.address()).unwrap();
    half.write_all(b"POST /embed/text HTTP/1.1\r\nHost: localhost\r\nContent-Length: 12\r\n\r\na red").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let finisher = std::thread::spawn(move || {
        use std::io::Read;
        std::thread::sleep(std::time::Duration::from_secs(1));
        half.write_all(b" square").unwrap();
        let mut answer = String::new();
        half.read_to_string(&mut answer).unwrap();
        answer
    });
    let status = server.terminate();
    let answer = finisher.join().unwrap();
    assert!(status.success(), "{status:?}: {:?}", server.log());
    assert!(answer.starts_with("HTTP/1.1 200 ") && answer.contains("Connection: close\r\n"), "{answer}");
    let embedding: serde_json::Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    let embedding: Vec<f64> = embedding["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(embedding, raw);
    assert!(std::net::TcpStream::connect(server.address()).is_err(), "the port still accepts");
    let said = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        server.log().iter().any(|l| l.starts_with("stopped: every request in hand was answered"))
    });
    assert!(said, "{:?}", server.log());
    let log = server.log();
    let answered = log.iter().rposition(|l| l.starts_with("POST \"/embed/text\" 200"));
    assert!(answered.is_some_and(|i| i < log.len() - 1), "the last answer was logged before the end: {log:?}");
    drop(server);
    let out = Command::new(example("search")).args(["--preset", "diffclip_tiny", "--text", "a dog"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--index"), "{out:?}");

    // --approximate serves through the HNSW index (built at start): nearly the exact hits.
    let mut approximate = search_cmd(&index);
    approximate.arg("--approximate");
    let server = Server::start(approximate);
    let (status, approx) = server.call("POST", "/search/text?top_k=10", b"a red square");
    assert_eq!(status, 200, "{approx}");
    let found = approx["hits"].as_array().unwrap().iter().filter(|h| hits.iter().any(|e| e["path"] == h["path"])).count();
    assert!(found >= 8, "{approx} vs {hits:?}");
}

/// Nobody reading its stderr holds neither the server's answers nor its stop.
#[test]
fn a_stalled_stderr_holds_neither_answers_nor_a_stop() {
    let mut program = Command::new(example("search"));
    program.args(["--preset", "diffclip_tiny", "--checkpoint"]).arg(fixture("diffclip_tiny/model.safetensors"));
    let mut server = Server::start(program);
    server.stall_stderr();
    let addr = server.address();
    // 4 × 1000 answers logged: more lines than the pipe and the log queue hold.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                use std::io::Read;
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                stream.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
                stream.write_all(&b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(1000)).unwrap();
                let mut answers = String::new();
                stream.read_to_string(&mut answers).unwrap(); // the 1000th answer closes
                answers.matches("HTTP/1.1 200 OK\r\n").count()
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), 1000);
    }
    assert!(server.terminate().success());
}

