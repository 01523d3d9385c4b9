//! The guides of `docs/`, one module a page, so that the documentation on docs.rs is whole.
//!
//! Each page is a Markdown file of the repository's `docs/` folder, included as it is. Its
//! links to other pages are reference links whose definitions at the end of the file name
//! the Markdown file (for a reader of the repository); here the definitions of `links.md`
//! come first and point at the pages' modules instead (Markdown takes the first definition
//! of a label). The crate's doc, the README, starts with them too. The pages' Rust blocks
//! are marked `rust ignore`: they show parts of a program (the example's files, a line of a
//! function), which the repository's tests check where they stand, and do not compile alone.

/// Declares the pages: `module => "file stem", "what it is for"`.
macro_rules! pages {
    ($($module:ident => $file:literal, $what:literal;)*) => {
        $(
            #[doc = concat!($what, ".")]
            #[doc = ""]
            #[doc = include_str!("links.md")]
            #[doc = include_str!(concat!("../../docs/", $file, ".md"))]
            pub mod $module {}
        )*

        /// The file stems of the pages, for the test that each page of `docs/` is here.
        #[cfg(test)]
        const PAGES: &[&str] = &[$($file),*];
    };
}

pages! {
    getting_started => "getting-started", "From `cargo new` to a web app and a worker";
    messages_and_slots => "messages-and-slots", "Messages, their options, and slots";
    worker => "worker", "Running a worker: the command line, the builder, platforms";
    semantics => "semantics", "The contract: delivery, retries, failures, shutdown";
    testing => "testing", "Testing an application's messages and slots";
    cli => "cli", "The `mq` command";
    dashboard => "dashboard", "The web dashboard: queues, failures and slots in the browser";
    wire_format => "wire-format", "The envelope, for producers in other languages";
    observability => "observability", "Traces, metrics and health: what operators see";
    security => "security", "Trust: signed envelopes and authenticated connections";
    sqlite => "sqlite", "The embedded SQLite backend";
    beanstalkd => "beanstalkd", "The beanstalkd backend";
    nats => "nats", "The NATS JetStream backend";
    postgres => "postgres", "The PostgreSQL backend, transactional dispatch and the outbox";
    architecture => "architecture", "How mq is built";
    performance => "performance", "What mq costs, measured";
}

#[cfg(test)]
mod tests {
    use super::PAGES;

    const LINKS: &str = include_str!("links.md");

    /// The reference links of a Markdown text: the labels of `[text][label]`, outside code.
    fn labels(markdown: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut in_code = false;
        for line in markdown.lines() {
            if line.starts_with("```") {
                in_code = !in_code;
                continue;
            }
            if in_code || line.starts_with('[') && line.contains("]: ") {
                continue;
            }
            let mut rest = line;
            while let Some(at) = rest.find("][") {
                let after = &rest[at + 2..];
                let Some(end) = after.find(']') else { break };
                found.push(after[..end].to_owned());
                rest = &after[end..];
            }
        }
        found
    }

    fn defined(label: &str) -> bool {
        LINKS
            .lines()
            .any(|line| line.starts_with(&format!("[{label}]: ")))
    }

    #[test]
    fn every_link_of_the_readme_and_the_pages_has_a_rustdoc_target() {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut files = vec![format!("{root}/README.md")];
        files.extend(PAGES.iter().map(|page| format!("{root}/docs/{page}.md")));
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read a page");
            // An inline link to a page (`[text](page.md)`) would point nowhere on docs.rs.
            let inline = text.split("](").skip(1).find(|after| {
                let target = after.split(')').next().unwrap_or("");
                !target.starts_with("http") && target.contains(".md")
            });
            assert!(
                inline.is_none(),
                "{file} has an inline link to a page: write it as a reference link, \
                 `[text][page.md]`, and define `[page.md]: page.md` at the end"
            );
            for label in labels(&text) {
                assert!(
                    defined(&label),
                    "{file} links to `{label}`, which mq::guide::LINKS does not define"
                );
            }
        }
    }

    #[test]
    fn every_page_of_docs_is_a_guide() {
        let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/docs");
        for entry in std::fs::read_dir(docs).expect("list docs/") {
            let path = entry.expect("a page").path();
            if path.extension().is_some_and(|extension| extension == "md") {
                let stem = path
                    .file_stem()
                    .and_then(|stem| stem.to_str())
                    .unwrap_or("");
                assert!(
                    PAGES.contains(&stem),
                    "docs/{stem}.md is not a module of mq::guide (add it to the pages! list)"
                );
            }
        }
    }
}
