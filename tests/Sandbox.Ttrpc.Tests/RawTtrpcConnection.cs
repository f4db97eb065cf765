using System.Net.Sockets;
using Google.Protobuf;
using Sandbox.Ttrpc.Protocol;

namespace Sandbox.Ttrpc.Tests;

/// <summary>A test peer that writes arbitrary bytes and frames and reads raw responses.</summary>
internal sealed class RawTtrpcConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly TtrpcFrameReader _reader;

    private RawTtrpcConnection(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new TtrpcFrameReader(_stream);
    }

    public static async Task<RawTtrpcConnection> ConnectAsync(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
        return new RawTtrpcConnection(socket);
    }

    public async Task WriteBytesAsync(byte[] bytes) => await _stream.WriteAsync(bytes);

    public async Task WriteFrameAsync(uint streamId, TtrpcMessageType type, byte[] data)
    {
        var header = new byte[TtrpcFrameHeader.Size];
        new TtrpcFrameHeader((uint)data.Length, streamId, type, 0).WriteTo(header);
        await _stream.WriteAsync(header);
        await _stream.WriteAsync(data);
    }

    public Task WriteRequestAsync(uint streamId, Request request) =>
        WriteFrameAsync(streamId, TtrpcMessageType.Request, request.ToByteArray());

    public async Task<(uint StreamId, Response Response)> ReadResponseAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var frame = await _reader.ReadFrameAsync(timeout.Token) ?? throw new IOException("the server closed the connection");
        Assert.Equal(TtrpcMessageType.Response, frame.Header.Type);
        return (frame.Header.StreamId, Response.Parser.ParseFrom(frame.Data));
    }

    /// <summary>True when the server closed the connection (read returns end of stream).</summary>
    public async Task<bool> IsClosedByServerAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var buffer = new byte[1];
        try
        {
            return await _stream.ReadAsync(buffer, timeout.Token) == 0;
        }
        catch (IOException)
        {
            return true;
        }
    }

    public ValueTask DisposeAsync()
    {
        _stream.Dispose();
        return ValueTask.CompletedTask;
    }
}
