//! READMEs are Markdown written by plugin authors, shown to tenants: rendered to HTML with any
//! raw HTML in them shown as text, and links limited to http(s), mailto and relative targets.

use pulldown_cmark::{Event, Options, Parser, Tag};

/// Renders a README to HTML that is safe to put in a page.
pub fn to_html(markdown: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        // Raw HTML becomes text: authors cannot put scripts or forms in the catalog.
        Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

fn safe_url(url: pulldown_cmark::CowStr<'_>) -> pulldown_cmark::CowStr<'_> {
    let lower = url.trim().to_ascii_lowercase();
    let scheme = lower.split_once(':').map(|(s, _)| s);
    let ok = match scheme {
        None => true,
        // `a:b` without `/` before the colon is a scheme; a colon later in a path is not.
        Some(s) if s.contains('/') || s.contains('?') || s.contains('#') => true,
        Some(s) => matches!(s, "http" | "https" | "mailto"),
    };
    if ok { url } else { "#".into() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_markdown_and_neutralizes_html() {
        let html = super::to_html(
            "# Cost\n\n<script>alert(1)</script>\n\n[ok](https://x.example) [bad](javascript:alert(1)) <img src=x onerror=alert(1)>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert!(html.contains("<h1>Cost</h1>"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("href=\"https://x.example\""), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("<table>"), "{html}");
    }
}
