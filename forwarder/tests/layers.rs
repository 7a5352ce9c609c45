//! forwarder/src is in five layers, one folder each (kernel, state, policy,
//! operations, presentation; their order in `LAYERS`); a file may import from
//! its own layer and the ones below, never above, and only `cli/` imports
//! `cli`. This test reads every `crate::…` and `super::…` path in the sources
//! (use lines, groups and paths in code; comments left out) and fails on any
//! that breaks those rules, naming the file and the path. No root needed.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

/// Bottom first: a layer may use the ones before it.
const LAYERS: [&str; 5] = ["kernel", "state", "policy", "operations", "presentation"];

/// Files at the crate root: the crate's root and binary (exempt), and beside
/// the layers the errors every layer returns and a port's role (they import
/// no layer).
const ROOT_FILES: [&str; 4] = ["lib.rs", "main.rs", "error.rs", "role.rs"];

#[test]
fn imports_only_go_down_the_layers_and_only_cli_imports_cli() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let reexports = root_reexports(&fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 30,
        "read only {} files in {}",
        files.len(),
        src.display()
    );
    let mut broken = Vec::new();
    for file in &files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = fs::read_to_string(file).unwrap();
        broken.extend(violations(&rel, &text, &reexports));
    }
    assert!(
        broken.is_empty(),
        "imports against the layers:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import_in_a_use_group() {
    let reexports = root_reexports("pub use state::{forwarder::Forwarder, role::Role};");
    let text = "use crate::{\n    Result,\n    operations::{attach::Attached, status},\n};\n";
    let found = violations("policy/vid.rs", text, &reexports);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].contains("operations::attach::Attached"),
        "{found:?}"
    );
}

#[test]
fn the_check_sees_cli_imported_outside_cli_and_a_root_alias() {
    let reexports =
        root_reexports("pub use presentation::{cli, metrics};\npub use kernel::mode::Mode;");
    let text = "// crate::presentation::cli in a comment is fine\n\
                fn f() { crate::presentation::cli::output::printable(x); }\n\
                use crate::{Mode, metrics};\n";
    let found = violations("presentation/metrics.rs", text, &reexports);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("imports cli"), "{found:?}");
    assert!(found[1].contains("name the layer"), "{found:?}");
    assert!(violations("presentation/cli/mod.rs", text, &reexports).len() == 1);
    // `Mode` is the kernel layer's: fine from state, not from error.rs.
    assert!(violations("state/pins.rs", "use crate::Mode;", &reexports).is_empty());
    assert_eq!(
        violations("error.rs", "use crate::Mode;", &reexports).len(),
        1
    );
}

#[test]
fn the_check_follows_super_out_of_a_folder() {
    let text = "use super::super::policy::vid;\nuse super::judge;\n";
    let found = violations("state/status/mod.rs", text, &BTreeMap::new());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("policy::vid"), "{found:?}");
}

/// What one file imports against the rules, one line each.
fn violations(rel: &str, text: &str, reexports: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let module = module_path(rel);
    let own = match module.first().map(String::as_str) {
        Some(_) if ROOT_FILES.contains(&rel) => Some(-1),
        None => return Vec::new(), // lib.rs and main.rs
        Some(first) => level(first),
    };
    let Some(own) = own else {
        return vec![format!(
            "{rel}: not in a layer folder ({})",
            LAYERS.join(", ")
        )];
    };
    let in_cli = rel.starts_with("presentation/cli/");
    let mut out = Vec::new();
    for path in crate_paths(&module, &strip_comments(text)) {
        let shown = path.join("::");
        let Some(first) = path.first() else { continue };
        let target = if let Some(to) = reexports.get(first) {
            if to.len() == 2 && level(&to[0]).is_some() {
                out.push(format!(
                    "{rel}: `crate::{shown}`: name the layer (`crate::{}`)",
                    to.join("::")
                ));
                continue;
            }
            to.iter().chain(&path[1..]).cloned().collect()
        } else {
            path.clone()
        };
        let Some(target_level) = level(&target[0]) else {
            continue;
        };
        if target[0] == "presentation"
            && target.get(1).map(String::as_str) == Some("cli")
            && !in_cli
        {
            out.push(format!("{rel}: imports cli (`{shown}`): only cli/ may"));
        } else if target_level > own {
            out.push(format!(
                "{rel}: `{shown}` is in {}, above this file's layer ({})",
                target[0],
                module.first().unwrap()
            ));
        }
    }
    out
}

fn level(layer: &str) -> Option<i32> {
    LAYERS.iter().position(|l| *l == layer).map(|i| i as i32)
}

/// `kernel/sys.rs` → [kernel, sys]; `operations/status/mod.rs` → [operations, status].
fn module_path(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// `pub use LAYER::…;` lines of lib.rs: the name at the root → its full path.
fn root_reexports(lib: &str) -> BTreeMap<String, Vec<String>> {
    let lib = strip_comments(lib);
    let mut out = BTreeMap::new();
    let mut rest = lib.as_str();
    while let Some(at) = rest.find("pub use ") {
        rest = &rest[at + "pub use ".len()..];
        let mut i = 0;
        for path in parse_tree(rest.as_bytes(), &mut i) {
            if let Some(last) = path.last() {
                out.insert(last.clone(), path);
            }
        }
    }
    out
}

/// Every path after `crate::` or `super::`, resolved from the crate root.
fn crate_paths(module: &[String], text: &str) -> Vec<Vec<String>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let word_start = at == 0
            || !(bytes[at - 1].is_ascii_alphanumeric()
                || bytes[at - 1] == b'_'
                || bytes[at - 1] == b':');
        let (base, skip) = if word_start && bytes[at..].starts_with(b"crate::") {
            (Vec::new(), "crate::".len())
        } else if word_start && bytes[at..].starts_with(b"super::") {
            let mut base = module.to_vec();
            let mut skip = 0;
            while bytes[at + skip..].starts_with(b"super::") {
                base.pop();
                skip += "super::".len();
            }
            (base, skip)
        } else {
            at += 1;
            continue;
        };
        let mut i = at + skip;
        for path in parse_tree(bytes, &mut i) {
            out.push(base.iter().cloned().chain(path).collect());
        }
        at = i.max(at + 1);
    }
    out
}

/// A use tree (`a::b`, `a::{b, c::d}`, `*`, `x as y`) from `bytes[*i]`; in
/// code, the path stops at the first character that is not part of one.
fn parse_tree(bytes: &[u8], i: &mut usize) -> Vec<Vec<String>> {
    skip_space(bytes, i);
    if bytes.get(*i) == Some(&b'{') {
        *i += 1;
        let mut all = Vec::new();
        loop {
            skip_space(bytes, i);
            match bytes.get(*i) {
                None => return all,
                Some(b'}') => {
                    *i += 1;
                    return all;
                }
                Some(b',') => *i += 1,
                _ => {
                    let before = *i;
                    all.extend(parse_tree(bytes, i));
                    if *i == before {
                        *i += 1;
                    }
                }
            }
        }
    }
    let start = *i;
    while bytes
        .get(*i)
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        *i += 1;
    }
    if start == *i {
        if bytes.get(*i) == Some(&b'*') {
            *i += 1;
        }
        return vec![Vec::new()];
    }
    let ident = String::from_utf8_lossy(&bytes[start..*i]).into_owned();
    if bytes[*i..].starts_with(b"::") {
        *i += 2;
        return parse_tree(bytes, i)
            .into_iter()
            .map(|rest| {
                let mut path = vec![ident.clone()];
                path.extend(rest);
                path
            })
            .collect();
    }
    // `x as y`: the alias names nothing to check.
    let mut after = *i;
    skip_space(bytes, &mut after);
    if bytes[after..].starts_with(b"as ") {
        *i = after + 3;
        skip_space(bytes, i);
        while bytes
            .get(*i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            *i += 1;
        }
    }
    if ident == "self" {
        return vec![Vec::new()];
    }
    vec![vec![ident]]
}

fn skip_space(bytes: &[u8], i: &mut usize) {
    while bytes.get(*i).is_some_and(u8::is_ascii_whitespace) {
        *i += 1;
    }
}

/// The text without `//` comments (doc comments included: a link in a
/// comment is not an import).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| line.find("//").map_or(line, |at| &line[..at]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
