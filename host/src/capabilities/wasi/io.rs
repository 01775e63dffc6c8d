//! `wasi:io/poll` and `wasi:io/streams` whose waits end at the call's deadline.
//!
//! wasmtime-wasi's synchronous bindings wait in host code without bound (`poll` on a
//! clock an hour away, a blocking write to a stream that never drains), where the epoch
//! deadline cannot reach. These implementations do what wasmtime-wasi's do — they call
//! its asynchronous implementations on the store's resource table — but every wait goes
//! through [`wait`], which ends it at the deadline with a timeout for the call.
//! Non-waiting operations are answered in place.

use std::time::Instant;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::io::poll as async_poll;
use wasmtime_wasi::p2::bindings::io::streams as async_streams;
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamError, StreamResult};

use crate::runtime::deadline::{DeadlineExceeded, wait};
use crate::runtime::state::StoreState;

/// The resource table of a store and the deadline of the call running in it.
pub struct BoundedIo<'a> {
    table: &'a mut ResourceTable,
    deadline: Instant,
}

struct HasBoundedIo;

impl HasData for HasBoundedIo {
    type Data<'a> = BoundedIo<'a>;
}

fn view(state: &mut StoreState) -> BoundedIo<'_> {
    let deadline = state.deadline();
    BoundedIo {
        table: state.table_mut(),
        deadline,
    }
}

/// Add `wasi:io/error`, `wasi:io/poll` and `wasi:io/streams` to `linker`.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::bindings::io::error::add_to_linker::<StoreState, HasTable>(linker, |s| {
        s.table_mut()
    })?;
    poll::add_to_linker::<StoreState, HasBoundedIo>(linker, view)?;
    streams::add_to_linker::<StoreState, HasBoundedIo>(linker, view)?;
    Ok(())
}

struct HasTable;

impl HasData for HasTable {
    type Data<'a> = &'a mut ResourceTable;
}

const POLL: &str = "wasi:io/poll";
const STREAMS: &str = "wasi:io/streams";

fn trap(e: DeadlineExceeded) -> wasmtime::Error {
    wasmtime::Error::new(e)
}

fn stream_trap(e: DeadlineExceeded) -> StreamError {
    StreamError::Trap(trap(e))
}

impl poll::Host for BoundedIo<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        let deadline = self.deadline;
        let table = &mut *self.table;
        wait(deadline, POLL, async_poll::Host::poll(table, pollables)).map_err(trap)?
    }
}

impl poll::HostPollable for BoundedIo<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        let deadline = self.deadline;
        let table = &mut *self.table;
        wait(
            deadline,
            POLL,
            async_poll::HostPollable::ready(table, pollable),
        )
        .map_err(trap)?
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        let deadline = self.deadline;
        let table = &mut *self.table;
        wait(
            deadline,
            POLL,
            async_poll::HostPollable::block(table, pollable),
        )
        .map_err(trap)?
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.table, pollable)
    }
}

impl streams::Host for BoundedIo<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        Ok(
            match async_streams::Host::convert_stream_error(self.table, err)? {
                async_streams::StreamError::LastOperationFailed(e) => {
                    streams::StreamError::LastOperationFailed(e)
                }
                async_streams::StreamError::Closed => streams::StreamError::Closed,
            },
        )
    }
}

impl streams::HostOutputStream for BoundedIo<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        // Dropping waits for the stream's background work to stop.
        let fut = async_streams::HostOutputStream::drop(&mut *self.table, stream);
        wait(self.deadline, STREAMS, fut).map_err(trap)?
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        async_streams::HostOutputStream::check_write(self.table, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        async_streams::HostOutputStream::write(self.table, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        let deadline = self.deadline;
        let fut = async_streams::HostOutputStream::blocking_write_and_flush(
            &mut *self.table,
            stream,
            bytes,
        );
        wait(deadline, STREAMS, fut).map_err(stream_trap)?
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        let deadline = self.deadline;
        let fut = async_streams::HostOutputStream::blocking_write_zeroes_and_flush(
            &mut *self.table,
            stream,
            len,
        );
        wait(deadline, STREAMS, fut).map_err(stream_trap)?
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        async_streams::HostOutputStream::subscribe(self.table, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        async_streams::HostOutputStream::write_zeroes(self.table, stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        async_streams::HostOutputStream::flush(self.table, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        let deadline = self.deadline;
        let fut = async_streams::HostOutputStream::blocking_flush(&mut *self.table, stream);
        wait(deadline, STREAMS, fut).map_err(stream_trap)?
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        async_streams::HostOutputStream::splice(self.table, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        let deadline = self.deadline;
        let fut = async_streams::HostOutputStream::blocking_splice(&mut *self.table, dst, src, len);
        wait(deadline, STREAMS, fut).map_err(stream_trap)?
    }
}

impl streams::HostInputStream for BoundedIo<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        let fut = async_streams::HostInputStream::drop(&mut *self.table, stream);
        wait(self.deadline, STREAMS, fut).map_err(trap)?
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        async_streams::HostInputStream::read(self.table, stream, len)
    }

    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        let deadline = self.deadline;
        let fut = async_streams::HostInputStream::blocking_read(&mut *self.table, stream, len);
        wait(deadline, STREAMS, fut).map_err(stream_trap)?
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        async_streams::HostInputStream::skip(self.table, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        let deadline = self.deadline;
        let fut = async_streams::HostInputStream::blocking_skip(&mut *self.table, stream, len);
        wait(deadline, STREAMS, fut).map_err(stream_trap)?
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        async_streams::HostInputStream::subscribe(self.table, stream)
    }
}
