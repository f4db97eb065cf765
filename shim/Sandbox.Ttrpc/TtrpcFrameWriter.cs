namespace Sandbox.Ttrpc;

/// <summary>
/// Writes whole ttrpc frames to a byte stream. Safe for concurrent callers: each frame is written under a lock so
/// frames never interleave.
/// </summary>
public sealed class TtrpcFrameWriter : IDisposable
{
    private readonly Stream _stream;
    private readonly SemaphoreSlim _writeLock = new(1, 1);

    public TtrpcFrameWriter(Stream stream)
    {
        _stream = stream;
    }

    public async Task WriteFrameAsync(uint streamId, TtrpcMessageType type, byte flags, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (data.Length > TtrpcFrameHeader.MaxDataLength)
            throw new TtrpcException(TtrpcStatusCode.ResourceExhausted,
                $"message length {data.Length} exceed maximum message size of {TtrpcFrameHeader.MaxDataLength}");

        var frame = new byte[TtrpcFrameHeader.Size + data.Length];
        new TtrpcFrameHeader((uint)data.Length, streamId, type, flags).WriteTo(frame);
        data.Span.CopyTo(frame.AsSpan(TtrpcFrameHeader.Size));

        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _stream.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
            await _stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public void Dispose() => _writeLock.Dispose();
}
