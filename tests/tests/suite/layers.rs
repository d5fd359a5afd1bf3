//! The crate reads bottom-up, and this keeps it so: every module of `scheduler/src` belongs to
//! a layer, and a module may import only from layers below its own (docs/design.md, "The
//! layers"). From the bottom:
//!
//! | rank | module | what it is |
//! |---|---|---|
//! | 0 | `wait/` | the wait kernel: waiter protocol, raw lock, timers, `BlockKind`, `Cancelled` |
//! | 1 | `goroutine/` | one goroutine: task, stack, overflow, completion |
//! | 2 | `sched/` | workers, queues, idle, monitor, spares, deadlock, admission, blocking pool |
//! | 3-8 | `select/`, `chan/`, `context`, `net/`, `time/`, `sync/` | the primitives, in that order |
//! | 9-20 | `metrics`, `dump`, `trace/`, `sigquit`, `builder`, `runtime`, `goroutine_builder`, `goroutine_local`, `scope`, `join_set`, `group/`, `lib` | the face |
//!
//! An import is any `crate::NAME` path in code: `use` lines (grouped ones too) and paths
//! written inline. Comments (doc links included) and a file's `#[cfg(test)] mod tests` are not
//! code that ships, and `crate::testing` (test helpers), `crate::shim` (the model checker's
//! facade) and `crate::__...` (what the macros expand to) belong to no layer; an item of the
//! crate root (`crate::Runtime`) counts as `lib`. Since the ranks
//! are a total order, a rule kept is also a graph without cycles.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The modules from the bottom up: a module may import from those before it only.
const LAYERS: &[&str] = &[
    "wait",
    "goroutine",
    "sched",
    "select",
    "chan",
    "context",
    "net",
    "time",
    "sync",
    "metrics",
    "dump",
    "trace",
    "sigquit",
    "builder",
    "runtime",
    "goroutine_builder",
    "goroutine_local",
    "scope",
    "join_set",
    "group",
    "lib",
];

/// Imports of no layer.
const EXEMPT: &[&str] = &["testing", "shim"];

/// The layer of a file, by its path below `src`: its top folder, or its own name.
fn module_of(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .expect("a file below src")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.strip_suffix(".rs").unwrap_or(&first).to_owned()
}

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|m| *m == module)
}

/// The code of a source file that ships: without comment lines, and without the unit tests
/// at its end.
fn shipped_code(source: &str) -> String {
    let mut code = String::new();
    let mut lines = source.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed == "#[cfg(test)]" && lines.peek().is_some_and(|l| l.trim() == "mod tests {") {
            break;
        }
        if !trimmed.starts_with("//") {
            code.push_str(line);
            code.push('\n');
        }
    }
    code
}

/// The modules `code` names through `crate::`: `crate::name` and `crate::{a::.., b, ..}`.
fn imported_modules(code: &str) -> BTreeSet<String> {
    let mut modules = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for item in split_top_level(&group[..end]) {
                modules.insert(first_segment(item));
            }
        } else {
            modules.insert(first_segment(rest));
        }
    }
    modules.retain(|m| !m.is_empty() && !m.starts_with("__") && !EXEMPT.contains(&m.as_str()));
    modules
}

/// The index of the `}` that closes a group whose `{` came just before `group`.
fn matching_brace(group: &str) -> usize {
    let mut depth = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    group.len()
}

/// The comma-separated items of a `use` group, nested groups kept whole.
fn split_top_level(group: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

fn first_segment(path: &str) -> String {
    path.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Every import of the files below `src` that goes against the layers, as
/// `file: module -> imported`.
fn violations(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).expect("below src");
        let module = module_of(relative);
        if EXEMPT.contains(&module.as_str()) {
            continue;
        }
        let Some(own) = rank(&module) else {
            found.push(format!(
                "{}: module {module:?} has no layer",
                relative.display()
            ));
            continue;
        };
        let source = std::fs::read_to_string(&file).expect("readable source");
        for imported in imported_modules(&shipped_code(&source)) {
            if imported == module {
                continue;
            }
            // Anything else is an item of the crate root (`crate::Runtime`, `crate::spawn`):
            // the face's `lib`.
            let (imported, theirs) = match rank(&imported) {
                Some(theirs) => (imported, theirs),
                None => (format!("lib ({imported})"), LAYERS.len() - 1),
            };
            if theirs >= own {
                found.push(format!(
                    "{}: {module} imports {imported}, which is not below it",
                    relative.display()
                ));
            }
        }
    }
    found
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn scheduler_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scheduler/src")
}

#[test]
fn every_module_imports_only_from_layers_below_it() {
    let found = violations(&scheduler_src());
    assert!(
        found.is_empty(),
        "imports against the layers (see this file's doc):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_sees_every_module_of_the_crate() {
    let mut modules: Vec<String> = std::fs::read_dir(scheduler_src())
        .expect("readable src")
        .map(|e| module_of(Path::new(&e.unwrap().file_name())))
        .filter(|m| !EXEMPT.contains(&m.as_str()))
        .collect();
    modules.sort();
    let mut layered: Vec<String> = LAYERS.iter().map(|m| m.to_string()).collect();
    layered.sort();
    assert_eq!(
        modules, layered,
        "a module of src is missing from LAYERS, or gone"
    );
}

#[test]
fn the_scan_catches_a_forbidden_import_in_every_form() {
    let dir = std::env::temp_dir().join(format!("scheduler-layers-{}", std::process::id()));
    let write = |path: &str, text: &str| {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    };
    // The kernel importing the scheduler three ways, a goroutine file importing a primitive
    // inside a nested group, and what does not count: comments, tests, exempt modules.
    write(
        "wait/waiter.rs",
        "use crate::sched::context;\nfn f() { crate::sched::unpark(); }\n",
    );
    write(
        "wait/lock.rs",
        "use crate::{testing, sched::{self, wake}};\n// crate::chan in a comment\n",
    );
    write(
        "goroutine/task.rs",
        "use crate::wait::{self, waiter::{Waiter, Wake}, lock};\nuse crate::{wait::BlockKind, \
         sync::Mutex};\n#[cfg(test)]\nmod tests {\n    use crate::runtime::Runtime;\n}\n",
    );
    write(
        "sched/ok.rs",
        "use crate::goroutine::task;\nuse crate::wait::lock;\n",
    );
    write("chan/root.rs", "use crate::JoinHandle;\n");
    let mut found = violations(&dir);
    found.sort();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        found,
        [
            "chan/root.rs: chan imports lib (JoinHandle), which is not below it",
            "goroutine/task.rs: goroutine imports sync, which is not below it",
            "wait/lock.rs: wait imports sched, which is not below it",
            "wait/waiter.rs: wait imports sched, which is not below it",
        ]
    );
}
