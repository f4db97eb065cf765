using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;

namespace Sandbox.Agent.Grpc;

/// <summary>The message streams of one gRPC call carried by one HTTP/2 request.</summary>
public sealed class GrpcCall(PipeReader requestBody, IHttpResponseBodyFeature responseBody, int maxReceiveMessageSize)
{
    /// <summary>The next request message, or null when the client has finished sending.</summary>
    public async ValueTask<byte[]?> ReadMessageAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            ReadResult result = await requestBody.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            GrpcFrame.ParseResult parsed;
            byte[] payload;
            try
            {
                parsed = GrpcFrame.TryParse(ref buffer, maxReceiveMessageSize, out payload);
            }
            catch
            {
                requestBody.AdvanceTo(result.Buffer.Start, result.Buffer.End);
                throw;
            }
            if (parsed == GrpcFrame.ParseResult.Complete)
            {
                requestBody.AdvanceTo(buffer.Start);
                return payload;
            }
            if (result.IsCompleted || result.IsCanceled)
            {
                long left = buffer.Length;
                requestBody.AdvanceTo(buffer.End);
                if (left != 0) throw new GrpcFrameException($"the request ended inside a message ({left} bytes of an incomplete frame)");
                return null;
            }
            requestBody.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>Writes one response message and flushes it (so streamed messages reach the client at once).</summary>
    public async ValueTask WriteMessageAsync(byte[] payload, CancellationToken cancellationToken)
    {
        GrpcFrame.Write(responseBody.Writer, payload);
        FlushResult flushed = await responseBody.Writer.FlushAsync(cancellationToken);
        if (flushed.IsCanceled) throw new OperationCanceledException("writing the gRPC response was cancelled", cancellationToken);
    }
}
