using Sandbox.Ttrpc;

namespace Sandbox.Ttrpc.Tests;

public class FramingTests
{
    [Fact]
    public void Header_is_big_endian_length_stream_type_flags()
    {
        var bytes = new byte[TtrpcFrameHeader.Size];
        new TtrpcFrameHeader(0x218, 1, TtrpcMessageType.Request, 0).WriteTo(bytes);
        // the Create request header observed on the wire (spec section 2.1)
        Assert.Equal(new byte[] { 0x00, 0x00, 0x02, 0x18, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00 }, bytes);

        var back = TtrpcFrameHeader.Read(new byte[] { 0, 0, 0, 0, 0, 0, 0, 0x11, 2, 0 });
        Assert.Equal(new TtrpcFrameHeader(0, 0x11, TtrpcMessageType.Response, 0), back);
    }

    [Fact]
    public async Task Frames_round_trip_through_writer_and_reader()
    {
        var stream = new MemoryStream();
        var writer = new TtrpcFrameWriter(stream);
        await writer.WriteFrameAsync(1, TtrpcMessageType.Request, 0, new byte[] { 1, 2, 3 }, CancellationToken.None);
        await writer.WriteFrameAsync(3, TtrpcMessageType.Response, 0x02, ReadOnlyMemory<byte>.Empty, CancellationToken.None);
        var big = new byte[TtrpcFrameHeader.MaxDataLength];
        big[^1] = 0x7f;
        await writer.WriteFrameAsync(5, TtrpcMessageType.Request, 0, big, CancellationToken.None);

        stream.Position = 0;
        var reader = new TtrpcFrameReader(stream);
        var first = await reader.ReadFrameAsync(CancellationToken.None);
        Assert.NotNull(first);
        Assert.Equal(new TtrpcFrameHeader(3, 1, TtrpcMessageType.Request, 0), first.Header);
        Assert.Equal(new byte[] { 1, 2, 3 }, first.Data);

        var second = await reader.ReadFrameAsync(CancellationToken.None);
        Assert.NotNull(second);
        Assert.Equal(new TtrpcFrameHeader(0, 3, TtrpcMessageType.Response, 0x02), second.Header);
        Assert.Empty(second.Data);

        var third = await reader.ReadFrameAsync(CancellationToken.None);
        Assert.NotNull(third);
        Assert.False(third.WasDiscarded);
        Assert.Equal(big, third.Data);

        Assert.Null(await reader.ReadFrameAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Writer_refuses_data_over_4_MiB()
    {
        var writer = new TtrpcFrameWriter(new MemoryStream());
        var e = await Assert.ThrowsAsync<TtrpcException>(() =>
            writer.WriteFrameAsync(1, TtrpcMessageType.Request, 0, new byte[TtrpcFrameHeader.MaxDataLength + 1], CancellationToken.None));
        Assert.Equal(TtrpcStatusCode.ResourceExhausted, e.Code);
    }

    [Fact]
    public async Task Oversized_frame_is_discarded_and_the_next_frame_is_still_read()
    {
        var stream = new MemoryStream();
        var header = new byte[TtrpcFrameHeader.Size];
        new TtrpcFrameHeader(TtrpcFrameHeader.MaxDataLength + 10, 7, TtrpcMessageType.Request, 0).WriteTo(header);
        stream.Write(header);
        stream.Write(new byte[TtrpcFrameHeader.MaxDataLength + 10]);
        new TtrpcFrameHeader(1, 9, TtrpcMessageType.Request, 0).WriteTo(header);
        stream.Write(header);
        stream.WriteByte(0xaa);
        stream.Position = 0;

        var reader = new TtrpcFrameReader(stream);
        var oversized = await reader.ReadFrameAsync(CancellationToken.None);
        Assert.NotNull(oversized);
        Assert.True(oversized.WasDiscarded);
        Assert.Equal(7u, oversized.Header.StreamId);
        Assert.Empty(oversized.Data);

        var next = await reader.ReadFrameAsync(CancellationToken.None);
        Assert.NotNull(next);
        Assert.Equal(9u, next.Header.StreamId);
        Assert.Equal(new byte[] { 0xaa }, next.Data);
    }

    [Fact]
    public async Task Truncated_header_is_a_protocol_error()
    {
        var reader = new TtrpcFrameReader(new MemoryStream(new byte[] { 0, 0, 0, 1, 0 }));
        await Assert.ThrowsAsync<TtrpcProtocolException>(() => reader.ReadFrameAsync(CancellationToken.None).AsTask());
    }

    [Fact]
    public async Task Truncated_data_is_a_protocol_error()
    {
        var reader = new TtrpcFrameReader(new MemoryStream(new byte[] { 0, 0, 0, 5, 0, 0, 0, 1, 1, 0, 0xaa }));
        await Assert.ThrowsAsync<TtrpcProtocolException>(() => reader.ReadFrameAsync(CancellationToken.None).AsTask());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(0x47)]
    public async Task Unknown_message_type_is_a_protocol_error(byte type)
    {
        var reader = new TtrpcFrameReader(new MemoryStream(new byte[] { 0, 0, 0, 0, 0, 0, 0, 1, type, 0 }));
        await Assert.ThrowsAsync<TtrpcProtocolException>(() => reader.ReadFrameAsync(CancellationToken.None).AsTask());
    }

    [Fact]
    public async Task Absurd_length_is_a_protocol_error_without_reading_it()
    {
        var absurd = new TtrpcFrameReader(new MemoryStream(new byte[] { 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 0 }));
        await Assert.ThrowsAsync<TtrpcProtocolException>(() => absurd.ReadFrameAsync(CancellationToken.None).AsTask());

        // "GET / HTTP/1.1" read as a header: length 0x47455420
        var reader = new TtrpcFrameReader(new MemoryStream("GET / HTTP/1.1\r\n"u8.ToArray()));
        await Assert.ThrowsAsync<TtrpcProtocolException>(() => reader.ReadFrameAsync(CancellationToken.None).AsTask());
    }
}
