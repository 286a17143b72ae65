//! The deployment files in `deploy/` stay in step with the code: the
//! Kubernetes config map is a config file `examcap serve` accepts, the ports
//! agree, and the example token secret parses.

use std::path::{Path, PathBuf};

use examcap::config::{parse_tokens, Config};

fn deploy(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The lines of a YAML block scalar `key: |`, de-indented.
fn block_scalar(yaml: &str, key: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    let head = lines
        .next()
        .unwrap_or_else(|| panic!("no `{key}: |` block"));
    let outer = head.len() - head.trim_start().len();
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > outer)
        .collect();
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    body.iter()
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_config_map_is_a_valid_server_config_on_the_container_port() {
    let toml = block_scalar(&deploy("k8s/configmap.yaml"), "examcap.toml");
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("examcap.toml");
    std::fs::write(&path, toml).unwrap();
    let config = Config::from_file(&path).expect("config map parses as examcap.toml");
    assert_eq!(config.data_dir, Path::new("/data"));
    let port = config.listen.port();

    let sts = deploy("k8s/statefulset.yaml");
    assert!(
        sts.contains(&format!("containerPort: {port}")),
        "statefulset exposes {port}"
    );
    assert!(
        sts.contains("mountPath: /data"),
        "the store is on the volume"
    );
    assert!(
        sts.contains(r#"args: ["serve", "--config", "/etc/examcap/examcap.toml"]"#)
            && sts.contains("mountPath: /etc/examcap"),
        "the config map is mounted where serve reads it"
    );
    let docker = deploy("Dockerfile");
    assert!(docker.contains(&format!("EXPOSE {port}")));
    assert!(docker.contains(&format!("EXAMCAP_LISTEN=0.0.0.0:{port}")));
}

#[test]
fn the_example_token_secret_parses() {
    let secret = deploy("k8s/secret.example.yaml");
    let line = secret
        .lines()
        .find_map(|l| l.trim().strip_prefix("EXAMCAP_TOKENS: "))
        .expect("EXAMCAP_TOKENS in the example secret");
    let tokens = parse_tokens(line.trim_matches('"')).expect("tokens parse");
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].name, "planning");
}
