using Sandbox.Agent.Native;
using Sandbox.Native;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent.Containers;

/// <summary>The agent's write end of a process's stdin (a pipe, or the pty master). Writes are serialized.</summary>
public sealed class InputStream : IDisposable
{
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    /// <summary>Held around each write() and while the fd is taken for closing: a write never lands on a closed fd
    /// whose number another pipe has reused, and the fd is closed once (Close and Dispose may race).</summary>
    private readonly object _fdLock = new();
    private readonly bool _closeMeansEof;
    private int _fd;
    private bool _closed;

    /// <param name="fd">Owned write fd.</param>
    /// <param name="closeMeansEof">True for a pipe (closing it is EOF for the process). For a pty master, closing
    /// would hang up the terminal, so <see cref="Close"/> only stops further writes.</param>
    public InputStream(int fd, bool closeMeansEof)
    {
        _fd = fd;
        _closeMeansEof = closeMeansEof;
        FileDescriptors.SetNonBlocking(fd);
    }

    public bool IsClosed => Volatile.Read(ref _closed);

    public async Task WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            while (!data.IsEmpty)
            {
                int fd, n, errno;
                lock (_fdLock)
                {
                    fd = _fd;
                    if (_closed || fd < 0) throw new InvalidOperationException("stdin is closed");
                    n = WriteOnce(fd, data.Span, out errno); // non-blocking: never waits under the lock
                }
                if (n > 0)
                {
                    data = data[n..];
                    continue;
                }
                if (errno == EINTR) continue;
                if (errno == EAGAIN)
                {
                    Task writable;
                    lock (_fdLock)
                    {
                        // registered under the lock, so never on a closed fd whose number another pipe reuses
                        if (_fd != fd) throw new InvalidOperationException("stdin is closed");
                        writable = FdPoller.Shared.WaitAsync(fd, forWrite: true, cancellationToken);
                    }
                    await writable;
                    continue;
                }
                if (errno == EPIPE) throw new InvalidOperationException("the process closed its stdin (EPIPE)");
                throw new IOException($"write to stdin failed: {Errno.Describe(errno)}");
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private static unsafe int WriteOnce(int fd, ReadOnlySpan<byte> data, out int errno)
    {
        fixed (byte* p = data)
        {
            long n = write(fd, p, data.Length);
            errno = n < 0 ? Errno.Last : 0;
            return (int)n;
        }
    }

    /// <summary>Closes stdin (EOF for the process). Waits for a write in progress to finish.</summary>
    public async Task CloseAsync()
    {
        await _writeLock.WaitAsync();
        try
        {
            Close();
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private void Close()
    {
        if (_closed) return;
        _closed = true;
        if (!_closeMeansEof) return;
        CloseFd();
    }

    public void Dispose()
    {
        _closed = true;
        CloseFd();
    }

    private void CloseFd()
    {
        int fd;
        lock (_fdLock)
        {
            fd = _fd;
            _fd = -1;
        }
        if (fd < 0) return;
        FdPoller.Shared.Forget(fd);
        close(fd);
    }
}
