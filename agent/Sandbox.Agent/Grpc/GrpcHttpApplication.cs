using Grpc.Core;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace Sandbox.Agent.Grpc;

/// <summary>
/// A Kestrel application that serves gRPC itself (no ASP.NET Core pipeline, no DI): it finds the method by the
/// request path, runs it, and ends the response with grpc-status / grpc-message (trailers, or headers for a
/// trailers-only response).
/// </summary>
public sealed class GrpcHttpApplication(GrpcMethodTable methods, Action<string> log, int maxReceiveMessageSize = 64 * 1024 * 1024)
    : IHttpApplication<IFeatureCollection>
{
    public IFeatureCollection CreateContext(IFeatureCollection contextFeatures) => contextFeatures;

    public void DisposeContext(IFeatureCollection context, Exception? exception) { }

    public async Task ProcessRequestAsync(IFeatureCollection features)
    {
        var request = features.GetRequiredFeature<IHttpRequestFeature>();
        var response = features.GetRequiredFeature<IHttpResponseFeature>();
        var responseBody = features.GetRequiredFeature<IHttpResponseBodyFeature>();
        var lifetime = features.GetRequiredFeature<IHttpRequestLifetimeFeature>();

        if (!HttpMethodIsPost(request.Method))
        {
            response.StatusCode = 405;
            return;
        }
        string? contentType = request.Headers.ContentType;
        if (contentType == null || !contentType.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase))
        {
            response.StatusCode = 415;
            return;
        }
        // Long-lived streams (stdin, output) may stay idle: never drop them for a low data rate.
        var minRate = features.Get<IHttpMinRequestBodyDataRateFeature>();
        if (minRate != null) minRate.MinDataRate = null;

        response.StatusCode = 200;
        response.Headers.ContentType = "application/grpc";

        string path = request.Path;
        if (!methods.TryGet(path, out var handler))
        {
            log($"gRPC {path}: unknown method (UNIMPLEMENTED)");
            SetStatus(features, response, new Status(StatusCode.Unimplemented, $"unknown method {path}"), null);
            return;
        }

        DateTime deadline = DateTime.MaxValue;
        using var callCancellation = CancellationTokenSource.CreateLinkedTokenSource(lifetime.RequestAborted);
        if (GrpcTimeout.TryParse(request.Headers["grpc-timeout"], out TimeSpan timeout))
        {
            deadline = DateTime.UtcNow + timeout;
            callCancellation.CancelAfter(timeout);
        }

        var requestBody = features.GetRequiredFeature<IRequestBodyPipeFeature>().Reader;
        var call = new GrpcCall(requestBody, responseBody, maxReceiveMessageSize);
        var context = new AgentServerCallContext(path, request.Headers, response, responseBody, deadline, callCancellation.Token);
        Status status;
        try
        {
            await handler.HandleAsync(call, context);
            status = context.Status;
        }
        catch (RpcException e)
        {
            status = e.Status;
        }
        catch (OperationCanceledException) when (callCancellation.IsCancellationRequested)
        {
            status = lifetime.RequestAborted.IsCancellationRequested
                ? new Status(StatusCode.Cancelled, "the client cancelled the call")
                : new Status(StatusCode.DeadlineExceeded, $"the deadline of {timeout} passed");
        }
        catch (GrpcFrameException e)
        {
            status = new Status(StatusCode.Internal, e.Message);
        }
        catch (Exception e)
        {
            status = new Status(StatusCode.Unknown, $"the agent failed: {e.GetType().Name}: {e.Message}");
            log($"gRPC {path}: unexpected exception: {e}");
        }
        if (status.StatusCode != StatusCode.OK)
            log($"gRPC {path}: {status.StatusCode}: {status.Detail}");
        if (lifetime.RequestAborted.IsCancellationRequested) return;
        SetStatus(features, response, status, context.ResponseTrailers);
    }

    private static bool HttpMethodIsPost(string method) => string.Equals(method, "POST", StringComparison.Ordinal);

    private static void SetStatus(IFeatureCollection features, IHttpResponseFeature response, Status status, Metadata? trailers)
    {
        var target = response.Headers;
        if (response.HasStarted)
        {
            var trailersFeature = features.Get<IHttpResponseTrailersFeature>();
            if (trailersFeature == null) return;
            target = trailersFeature.Trailers;
        }
        target["grpc-status"] = ((int)status.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (!string.IsNullOrEmpty(status.Detail)) target["grpc-message"] = GrpcStatusMessage.Encode(status.Detail);
        if (trailers != null)
        {
            foreach (var entry in trailers)
            {
                if (!entry.IsBinary) target.Append(entry.Key, entry.Value);
            }
        }
    }
}
