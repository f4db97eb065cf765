using System.CommandLine;
using System.Net;
using System.Text;
using Sandbox.Ctl.Metrics;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Ctl;

/// <summary>
/// `sandboxctl metrics [--listen ADDR]`: every sandbox's figures in the Prometheus text format
/// (<see cref="PrometheusExposition"/>), printed once, or served at http://ADDR/metrics until interrupted, each scrape
/// sampled afresh (like kata-monitor).
/// </summary>
public static class MetricsCommand
{
    public static Command Create()
    {
        var listen = new Option<string?>("--listen")
        {
            Description = "Serve the metrics at http://ADDR/metrics (ADDR is host:port, e.g. 127.0.0.1:9099) instead of printing them once",
        };
        var json = new Option<bool>("--json") { Description = "Print the samples as JSON for tools instead of the Prometheus text" };
        var root = StateRootOption.Create();
        var command = new Command("metrics", "Per-sandbox and host figures in the Prometheus text format") { listen, json, root };
        command.SetAction(async (parse, cancellationToken) =>
        {
            string stateRoot = SandboxStateDirectory.ResolveRoot(parse.GetValue(root));
            if (parse.GetValue(listen) is not { } address)
            {
                var samples = await SandboxMetricsCollector.CollectAsync(stateRoot, cancellationToken);
                Console.Write(parse.GetValue(json)
                    ? System.Text.Json.JsonSerializer.Serialize(samples, MetricsJson.Default.IReadOnlyListSandboxSample) + "\n"
                    : PrometheusExposition.Write(samples));
                return 0;
            }
            try
            {
                await ServeAsync(address, stateRoot, started: url => Console.Error.WriteLine($"sandboxctl metrics: serving {url}"), cancellationToken);
            }
            catch (HttpListenerException e)
            {
                Console.Error.WriteLine($"sandboxctl metrics: cannot listen on {address}: {e.Message} (is the port taken? ADDR is host:port)");
                return 1;
            }
            catch (OperationCanceledException)
            {
            }
            return 0;
        });
        return command;
    }

    /// <summary>Serves GET /metrics on <paramref name="address"/> until <paramref name="cancellationToken"/> is cancelled.
    /// Any other path is answered 404.</summary>
    public static async Task ServeAsync(string address, string stateRoot, Action<string> started, CancellationToken cancellationToken)
    {
        using var listener = new HttpListener();
        string url = $"http://{address}/";
        listener.Prefixes.Add(url);
        listener.Start();
        started(url + "metrics");
        using var stop = cancellationToken.Register(listener.Stop);
        while (!cancellationToken.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await listener.GetContextAsync();
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            await AnswerAsync(context, stateRoot, cancellationToken);
        }
        cancellationToken.ThrowIfCancellationRequested();
    }

    private static async Task AnswerAsync(HttpListenerContext context, string stateRoot, CancellationToken cancellationToken)
    {
        using var response = context.Response;
        if (context.Request.Url?.AbsolutePath != "/metrics")
        {
            response.StatusCode = 404;
            return;
        }
        var body = Encoding.UTF8.GetBytes(PrometheusExposition.Write(await SandboxMetricsCollector.CollectAsync(stateRoot, cancellationToken)));
        response.ContentType = PrometheusExposition.ContentType;
        response.ContentLength64 = body.Length;
        await response.OutputStream.WriteAsync(body, cancellationToken);
    }
}

[System.Text.Json.Serialization.JsonSourceGenerationOptions(WriteIndented = true,
    PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower)]
[System.Text.Json.Serialization.JsonSerializable(typeof(IReadOnlyList<SandboxSample>))]
internal sealed partial class MetricsJson : System.Text.Json.Serialization.JsonSerializerContext;
