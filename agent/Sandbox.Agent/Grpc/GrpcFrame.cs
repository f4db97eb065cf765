using System.Buffers;
using System.Buffers.Binary;

namespace Sandbox.Agent.Grpc;

/// <summary>
/// gRPC length-prefixed messages: 1 byte compressed flag, 4 bytes big-endian length, then the payload.
/// </summary>
public static class GrpcFrame
{
    public const int HeaderSize = 5;

    public enum ParseResult { Incomplete, Complete }

    /// <summary>
    /// Parses one message from the front of <paramref name="buffer"/>. On Complete, <paramref name="buffer"/> is advanced
    /// past it. Throws <see cref="GrpcFrameException"/> for a compressed message or one larger than <paramref name="maxMessageSize"/>.
    /// </summary>
    public static ParseResult TryParse(ref ReadOnlySequence<byte> buffer, int maxMessageSize, out byte[] payload)
    {
        payload = Array.Empty<byte>();
        if (buffer.Length < HeaderSize) return ParseResult.Incomplete;
        Span<byte> header = stackalloc byte[HeaderSize];
        buffer.Slice(0, HeaderSize).CopyTo(header);
        if (header[0] != 0)
            throw new GrpcFrameException(header[0] == 1
                ? "compressed gRPC messages are not supported (the client must not set grpc-encoding)"
                : $"invalid gRPC compressed flag {header[0]}");
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
        if (length > (uint)maxMessageSize)
            throw new GrpcFrameException($"gRPC message of {length} bytes exceeds the limit of {maxMessageSize} bytes");
        if (buffer.Length < HeaderSize + length) return ParseResult.Incomplete;
        payload = buffer.Slice(HeaderSize, length).ToArray();
        buffer = buffer.Slice(HeaderSize + length);
        return ParseResult.Complete;
    }

    /// <summary>Writes the 5-byte header and the payload.</summary>
    public static void Write(IBufferWriter<byte> writer, ReadOnlySpan<byte> payload)
    {
        Span<byte> header = writer.GetSpan(HeaderSize);
        header[0] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(header[1..], (uint)payload.Length);
        writer.Advance(HeaderSize);
        writer.Write(payload);
    }
}

/// <summary>A malformed or unacceptable gRPC message frame.</summary>
public sealed class GrpcFrameException(string message) : Exception(message);
