using System.Buffers;
using Sandbox.Agent.Native;
using Sandbox.Native;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent.Containers;

/// <summary>
/// The agent's read end of a process's stdout or stderr (a pipe, or the pty master). Non-blocking reads through
/// <see cref="FdPoller"/>. One reader at a time; what a reader took but could not deliver is handed to the next one.
/// </summary>
public sealed class OutputStream : IDisposable
{
    private readonly object _lock = new();
    private int _fd;
    private bool _readerAttached;
    private byte[]? _undelivered;
    private bool _eof;
    private long _bytesRead;

    /// <param name="fd">The fd to read from (owned; closed on dispose), or -1 for a stream that is empty (stderr of a terminal).</param>
    public OutputStream(int fd)
    {
        _fd = fd;
        if (fd >= 0) FileDescriptors.SetNonBlocking(fd);
        else _eof = true;
    }

    /// <summary>Bytes read from the fd so far (for the log at end of file).</summary>
    public long BytesRead => Interlocked.Read(ref _bytesRead);

    public bool TryAttachReader()
    {
        lock (_lock)
        {
            if (_readerAttached) return false;
            _readerAttached = true;
            return true;
        }
    }

    public void DetachReader(byte[]? undelivered)
    {
        lock (_lock)
        {
            _undelivered = undelivered;
            _readerAttached = false;
        }
    }

    /// <summary>The next chunk, or null at EOF (all writers closed; for a pty, the terminal hung up).</summary>
    public async Task<byte[]?> ReadAsync(int maxBytes, CancellationToken cancellationToken)
    {
        byte[]? pending = Interlocked.Exchange(ref _undelivered, null);
        if (pending != null) return pending;
        while (true)
        {
            int fd, n, errno;
            byte[]? chunk;
            lock (_lock)
            {
                if (_eof || _fd < 0) return null;
                fd = _fd;
                // The fd is non-blocking, so read() never waits; doing it under the lock means Dispose cannot close the
                // fd in between and let its number be reused by another pipe, whose data this read would then take.
                n = ReadOnce(fd, maxBytes, out errno, out chunk);
            }
            if (n > 0)
            {
                Interlocked.Add(ref _bytesRead, n);
                return chunk;
            }
            if (n == 0 || errno == EIO)
            {
                lock (_lock) _eof = true;
                return null;
            }
            if (errno == EINTR) continue;
            if (errno != EAGAIN) throw new IOException($"read failed: {Errno.Describe(errno)}");
            Task readable;
            lock (_lock)
            {
                // Registered under the lock: a Dispose either came first (then there is nothing to wait for) or comes
                // after and cancels this waiter; never a registration on a closed fd whose number another pipe reuses.
                if (_fd != fd) return null;
                readable = FdPoller.Shared.WaitAsync(fd, forWrite: false, cancellationToken);
            }
            await readable;
        }
    }

    /// <summary>One read(2) of up to <paramref name="maxBytes"/> into a pooled buffer (held only for the call, so a
    /// large chunk size costs no memory per stream); <paramref name="chunk"/> is a copy of what it returned.</summary>
    private static unsafe int ReadOnce(int fd, int maxBytes, out int errno, out byte[]? chunk)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(maxBytes);
        try
        {
            long n;
            fixed (byte* p = buffer)
                n = read(fd, p, maxBytes);
            errno = n < 0 ? Errno.Last : 0;
            chunk = n > 0 ? buffer.AsSpan(0, (int)n).ToArray() : null;
            return (int)n;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public void Dispose()
    {
        int fd;
        lock (_lock)
        {
            fd = _fd;
            _fd = -1;
            _eof = true;
        }
        if (fd < 0) return;
        FdPoller.Shared.Forget(fd);
        close(fd);
    }
}
