namespace Sandbox.Ttrpc;

/// <summary>Reads ttrpc frames from a byte stream (one reader per connection; not thread-safe).</summary>
public sealed class TtrpcFrameReader
{
    /// <summary>
    /// Beyond this announced length the bytes are taken for garbage rather than for an oversized message: discarding
    /// them would mean reading up to 4 GiB from a peer that is not speaking ttrpc.
    /// </summary>
    public const long GarbageLengthThreshold = 16L * TtrpcFrameHeader.MaxDataLength;

    private readonly Stream _stream;
    private readonly byte[] _header = new byte[TtrpcFrameHeader.Size];

    public TtrpcFrameReader(Stream stream)
    {
        _stream = stream;
    }

    /// <summary>
    /// The next frame, or null when the peer closed the stream cleanly between two frames.
    /// Throws <see cref="TtrpcProtocolException"/> for a truncated frame or bytes that are not ttrpc.
    /// </summary>
    public async ValueTask<TtrpcFrame?> ReadFrameAsync(CancellationToken cancellationToken)
    {
        int got = await ReadAtLeastAsync(_header, cancellationToken).ConfigureAwait(false);
        if (got == 0)
            return null;
        if (got < TtrpcFrameHeader.Size)
            throw new TtrpcProtocolException($"connection closed inside a frame header ({got} of {TtrpcFrameHeader.Size} bytes)");

        var header = TtrpcFrameHeader.Read(_header);
        if (header.Type is < TtrpcMessageType.Request or > TtrpcMessageType.Data)
            throw new TtrpcProtocolException($"not a ttrpc frame: message type {(byte)header.Type}");
        if (header.Length > GarbageLengthThreshold)
            throw new TtrpcProtocolException($"not a ttrpc frame: data length {header.Length}");

        if (header.Length > TtrpcFrameHeader.MaxDataLength)
        {
            await DiscardAsync(header.Length, cancellationToken).ConfigureAwait(false);
            return new TtrpcFrame(header, Array.Empty<byte>(), wasDiscarded: true);
        }

        var data = header.Length == 0 ? Array.Empty<byte>() : new byte[header.Length];
        if (data.Length > 0)
        {
            got = await ReadAtLeastAsync(data, cancellationToken).ConfigureAwait(false);
            if (got < data.Length)
                throw new TtrpcProtocolException($"connection closed inside a frame ({got} of {data.Length} data bytes)");
        }
        return new TtrpcFrame(header, data);
    }

    private async ValueTask<int> ReadAtLeastAsync(byte[] buffer, CancellationToken cancellationToken) =>
        await _stream.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);

    private async ValueTask DiscardAsync(long length, CancellationToken cancellationToken)
    {
        var scratch = new byte[64 * 1024];
        long left = length;
        while (left > 0)
        {
            int n = await _stream.ReadAsync(scratch.AsMemory(0, (int)Math.Min(scratch.Length, left)), cancellationToken).ConfigureAwait(false);
            if (n == 0)
                throw new TtrpcProtocolException($"connection closed inside an oversized frame ({length - left} of {length} bytes)");
            left -= n;
        }
    }
}
