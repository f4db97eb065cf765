using System.Buffers.Binary;

namespace Sandbox.Ttrpc;

/// <summary>The ttrpc message type (byte 8 of the frame header).</summary>
public enum TtrpcMessageType : byte
{
    Request = 1,
    Response = 2,
    Data = 3,
}

/// <summary>
/// The 10-byte ttrpc frame header: data length (uint32 BE), stream id (uint32 BE), message type, flags.
/// </summary>
public readonly record struct TtrpcFrameHeader(uint Length, uint StreamId, TtrpcMessageType Type, byte Flags)
{
    public const int Size = 10;

    /// <summary>Largest data length a peer may send (4 MiB, as in containerd/ttrpc).</summary>
    public const int MaxDataLength = 4 << 20;

    public void WriteTo(Span<byte> destination)
    {
        if (destination.Length < Size)
            throw new ArgumentException($"a ttrpc frame header needs {Size} bytes", nameof(destination));
        BinaryPrimitives.WriteUInt32BigEndian(destination, Length);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], StreamId);
        destination[8] = (byte)Type;
        destination[9] = Flags;
    }

    public static TtrpcFrameHeader Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < Size)
            throw new ArgumentException($"a ttrpc frame header needs {Size} bytes", nameof(source));
        return new TtrpcFrameHeader(
            BinaryPrimitives.ReadUInt32BigEndian(source),
            BinaryPrimitives.ReadUInt32BigEndian(source[4..]),
            (TtrpcMessageType)source[8],
            source[9]);
    }
}
