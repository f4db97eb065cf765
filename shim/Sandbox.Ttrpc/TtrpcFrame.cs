namespace Sandbox.Ttrpc;

/// <summary>
/// One frame read from a ttrpc connection. When the announced length exceeded
/// <see cref="TtrpcFrameHeader.MaxDataLength"/>, the data was read and thrown away: <see cref="WasDiscarded"/> is
/// true and <see cref="Data"/> is empty.
/// </summary>
public sealed class TtrpcFrame
{
    public TtrpcFrame(TtrpcFrameHeader header, byte[] data, bool wasDiscarded = false)
    {
        Header = header;
        Data = data;
        WasDiscarded = wasDiscarded;
    }

    public TtrpcFrameHeader Header { get; }

    public byte[] Data { get; }

    public bool WasDiscarded { get; }
}
