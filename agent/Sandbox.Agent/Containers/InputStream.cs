using Sandbox.Agent.Native;

namespace Sandbox.Agent.Containers;

/// <summary>The agent's write end of a process's stdin (a pipe, or the pty master). Writes are serialized.</summary>
public sealed class InputStream : IDisposable
{
    private readonly SemaphoreSlim _writeLock = new(1, 1);
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
        LibC.SetNonBlocking(fd);
    }

    public bool IsClosed => Volatile.Read(ref _closed);

    public async Task WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            while (!data.IsEmpty)
            {
                if (_closed) throw new InvalidOperationException("stdin is closed");
                int n = WriteOnce(_fd, data.Span, out int errno);
                if (n > 0)
                {
                    data = data[n..];
                    continue;
                }
                if (errno == LibC.EINTR) continue;
                if (errno == LibC.EAGAIN)
                {
                    await FdPoller.Shared.WaitAsync(_fd, forWrite: true, cancellationToken);
                    continue;
                }
                if (errno == LibC.EPIPE) throw new InvalidOperationException("the process closed its stdin (EPIPE)");
                throw new IOException($"write to stdin failed: {LibC.ErrorText(errno)}");
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
            nint n = LibC.Write(fd, p, (nuint)data.Length);
            errno = n < 0 ? LibC.LastError : 0;
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
        FdPoller.Shared.Forget(_fd);
        LibC.Close(_fd);
        _fd = -1;
    }

    public void Dispose()
    {
        _closed = true;
        if (_fd < 0) return;
        FdPoller.Shared.Forget(_fd);
        LibC.Close(_fd);
        _fd = -1;
    }
}
