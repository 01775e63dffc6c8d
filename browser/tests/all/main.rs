//! Integration tests of `impressox-browser` against real Chromium, a tiny axum site and a tiny
//! forward proxy, both served on 127.0.0.1:0 by the tests themselves.
//!
//! Chromium is needed (`IMPRESSOX_CHROMIUM` or `/usr/bin/chromium`); a missing binary fails the
//! test with the install command, it is never skipped. Browser tests take one of two permits of
//! a process-wide semaphore: on 2 cores, more Chromiums at once starve each other.

mod capture;
mod contexts;
mod crash;
mod filter;
mod harness;
mod launch;
mod proxies;
mod proxy;
mod site;

/// Compile-time check: the host spawns these futures on a multi-threaded runtime, so every
/// public future and handle must be `Send` (an async closure over a borrowed argument once made
/// `lease()` `Send` only for one lifetime).
#[allow(dead_code)]
fn public_futures_and_handles_are_send(
    pool: impressox_browser::BrowserPool,
    ctx: impressox_browser::AccountContext,
    mut page: impressox_browser::PageLease,
) {
    use impressox_browser::{BrowserPool, ContextSpec, Expect, PoolConfig};
    fn send<T: Send>(_: T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<BrowserPool>();
    send_sync::<impressox_browser::AccountContext>();
    send::<&impressox_browser::PageLease>(&page);
    send(BrowserPool::start(PoolConfig::default()));
    send(pool.context(ContextSpec::default()));
    send(pool.shutdown());
    send(ctx.lease());
    send(ctx.cookies());
    send(ctx.set_cookies(&[]));
    send(ctx.clear_cookies());
    send(page.open("", Expect::default(), false));
    send(page.scroll_more(Expect::default(), false));
    send(page.wait_for_any(&[], std::time::Duration::ZERO));
    send(page.type_into("", ""));
    send(page.press_enter(""));
    send(page.click(""));
    send(page.inner_text(""));
    send(page.current_url());
    send(page.html());
    send(page.render("", std::time::Duration::ZERO));
    send(pool.filtered_context(
        ContextSpec::default(),
        impressox_browser::RequestFilter::new(|_| -> impressox_browser::FilterFuture {
            Box::pin(async { Ok(()) })
        }),
    ));
    send(ctx.close());
}
