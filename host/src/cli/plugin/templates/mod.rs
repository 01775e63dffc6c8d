//! The files `impressox plugin new` writes: a Rust crate on the SDK ([`rust`]), or a
//! Python or JavaScript project (`python/<kind>.py`, `js/<kind>.js`) with the host's WIT
//! copied in, a manifest for `impressox plugin build` and the pinned toolchain; every
//! project gets an example input for `impressox plugin run` (`examples/<kind>.json`).

use std::path::Path;

use super::project::{Lang, MANIFEST, Manifest};
use super::toolchain::{COMPONENTIZE_JS, COMPONENTIZE_PY, PREVIEW2_SHIM};
use crate::runtime::Kind;

mod rust;

/// The WIT package this host implements, as the build of this host saw it.
pub const WIT_FILES: [(&str, &str); 4] = [
    ("types.wit", include_str!("../../../../../wit/types.wit")),
    (
        "exports.wit",
        include_str!("../../../../../wit/exports.wit"),
    ),
    ("host.wit", include_str!("../../../../../wit/host.wit")),
    ("worlds.wit", include_str!("../../../../../wit/worlds.wit")),
];

/// The world a scaffolded task or event handler builds against: its export and only the
/// capabilities its template uses, so it needs only those grants.
const ACTIVE_WORLD: &str = "plugin";

/// `(relative path, contents)` of a new project. `sdk` is the SDK crate Rust projects
/// depend on.
pub fn files(kind: Kind, name: &str, lang: Lang, sdk: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = match lang {
        Lang::Rust => rust::files(kind, name, sdk)
            .into_iter()
            .map(|(p, t)| (p.to_string(), t))
            .collect(),
        Lang::Python | Lang::Js => guest_files(kind, name, lang),
    };
    files.push(("examples/input.json".into(), example_input(kind).into()));
    files
}

/// The example input for `impressox plugin run` of a kind.
pub fn example_input(kind: Kind) -> &'static str {
    match kind {
        Kind::FeedParser => include_str!("examples/feed-parser.json"),
        Kind::RuleProcessor => include_str!("examples/rule-processor.json"),
        Kind::ScrapeParser => include_str!("examples/scrape-parser.json"),
        Kind::NotifyFormatter => include_str!("examples/notify-formatter.json"),
        Kind::Task => include_str!("examples/task.json"),
        Kind::EventHandler => include_str!("examples/event-handler.json"),
        Kind::DocChunker => include_str!("examples/doc-chunker.json"),
    }
}

fn python_app(kind: Kind) -> &'static str {
    match kind {
        Kind::FeedParser => include_str!("python/feed-parser.py"),
        Kind::RuleProcessor => include_str!("python/rule-processor.py"),
        Kind::ScrapeParser => include_str!("python/scrape-parser.py"),
        Kind::NotifyFormatter => include_str!("python/notify-formatter.py"),
        Kind::Task => include_str!("python/task.py"),
        Kind::EventHandler => include_str!("python/event-handler.py"),
        Kind::DocChunker => include_str!("python/doc-chunker.py"),
    }
}

fn js_app(kind: Kind) -> &'static str {
    match kind {
        Kind::FeedParser => include_str!("js/feed-parser.js"),
        Kind::RuleProcessor => include_str!("js/rule-processor.js"),
        Kind::ScrapeParser => include_str!("js/scrape-parser.js"),
        Kind::NotifyFormatter => include_str!("js/notify-formatter.js"),
        Kind::Task => include_str!("js/task.js"),
        Kind::EventHandler => include_str!("js/event-handler.js"),
        Kind::DocChunker => include_str!("js/doc-chunker.js"),
    }
}

/// The capabilities a task's or event handler's template uses.
fn template_imports(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Task => &["kv"],
        Kind::EventHandler => &["docs"],
        _ => &[],
    }
}

fn guest_files(kind: Kind, name: &str, lang: Lang) -> Vec<(String, String)> {
    let world = if kind.is_pure() {
        kind.world().to_string()
    } else {
        ACTIVE_WORLD.to_string()
    };
    let manifest = Manifest {
        name: name.to_string(),
        kind: kind.world().to_string(),
        language: lang,
        source: None,
        wit: None,
        world: (!kind.is_pure()).then(|| world.clone()),
    };
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{kind}}", kind.world())
    };
    let mut files = vec![
        (
            MANIFEST.to_string(),
            format!(
                "# Read by `impressox plugin build`.\n{}",
                toml::to_string(&manifest).expect("a manifest serializes")
            ),
        ),
        (".gitignore".into(), gitignore(lang).into()),
    ];
    for (file, text) in WIT_FILES {
        files.push((format!("wit/{file}"), text.to_string()));
    }
    if !kind.is_pure() {
        files.push(("wit/world.wit".into(), active_world(kind)));
    }
    let out = format!("build/{name}.wasm");
    let source = lang.default_source();
    let (tool, pin_file, raw, setup, doc) = match lang {
        Lang::Python => {
            let raw = format!("componentize-py -d wit -w {world} componentize app -p . -o {out}");
            files.push(("app.py".into(), fill(python_app(kind))));
            files.push((
                "requirements.txt".into(),
                format!(
                    "# The toolchain `impressox plugin build` runs, at the version this host is tested with.\n\
                     {}=={}\n",
                    COMPONENTIZE_PY.package, COMPONENTIZE_PY.version
                ),
            ));
            files.push((
                "build.sh".into(),
                format!(
                    "#!/bin/sh\n# What `impressox plugin build` runs: builds {out} (copies it nowhere).\n\
                     set -eu\ncd \"$(dirname \"$0\")\"\nmkdir -p build\nexec {raw}\n"
                ),
            ));
            let setup =
                "```sh\npython3 -m venv .venv && .venv/bin/pip install -r requirements.txt   \
                         # componentize-py, pinned\n```"
                    .to_string();
            (
                COMPONENTIZE_PY.tool,
                "requirements.txt",
                raw,
                setup,
                "python.md",
            )
        }
        _ => {
            // JavaScript. Pure kinds may not import wasi:http, which componentize-js adds
            // unless its http and fetch-event features are off (as `plugin build` does).
            let raw = format!(
                "componentize-js {source} --wit wit --world-name {world} -d http -d fetch-event -o {out}"
            );
            files.push(("app.js".into(), fill(js_app(kind))));
            files.push(("package.json".into(), package_json(name, kind, &raw)));
            let setup = "```sh\nnpm install        # componentize-js, pinned in package.json (Node.js 18+)\n```"
                .to_string();
            (COMPONENTIZE_JS.tool, "package.json", raw, setup, "js.md")
        }
    };
    let language = match lang {
        Lang::Python => "Python",
        _ => "JavaScript",
    };
    let readme = include_str!("README.md")
        .replace("{{language}}", language)
        .replace("{{source}}", source)
        .replace("{{world}}", &world)
        .replace("{{setup}}", &setup)
        .replace("{{tool}}", tool)
        .replace("{{pin_file}}", pin_file)
        .replace("{{raw}}", &raw)
        .replace("{{doc}}", doc);
    files.push(("README.md".into(), fill(&readme)));
    files
}

/// `wit/world.wit` of a task or event handler: its export and the imports it uses.
fn active_world(kind: Kind) -> String {
    let mut text = format!(
        "// The world this plugin builds against (`world` in plugin.toml): `log`, the\n\
         // capabilities it uses and its kind's export. Import `config`, `kv`, `docs`, `notify`,\n\
         // `prices` or `rag` here when the plugin uses them, and grant each in the host's config\n\
         // (`[plugins.grants.<name>]`): a component importing one it was not granted is\n\
         // refused at load.\n\nworld {ACTIVE_WORLD} {{\n    import log;\n"
    );
    for import in template_imports(kind) {
        text.push_str(&format!("    import {import};\n"));
    }
    text.push_str(&format!("    export {};\n}}\n", kind.export_interface()));
    text
}

fn gitignore(lang: Lang) -> &'static str {
    match lang {
        Lang::Python => "/build/\n/.venv/\n__pycache__/\n",
        _ => "/build/\n/node_modules/\n",
    }
}

fn package_json(name: &str, kind: Kind, raw: &str) -> String {
    let value = serde_json::json!({
        "name": name,
        "version": "0.1.0",
        "private": true,
        "type": "module",
        "description": format!("A {} plugin for ImpressoX Workers", kind.world()),
        "scripts": {
            "build": format!("mkdir -p build && {raw}"),
        },
        "devDependencies": {
            COMPONENTIZE_JS.package: COMPONENTIZE_JS.version,
            PREVIEW2_SHIM.package: PREVIEW2_SHIM.version,
        },
    });
    let mut text = serde_json::to_string_pretty(&value).expect("JSON serializes");
    text.push('\n');
    text
}
