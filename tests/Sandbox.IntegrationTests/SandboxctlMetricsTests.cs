using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Sandbox.Ctl;
using Sandbox.Ctl.Metrics;
using Sandbox.IntegrationTests.Support;

namespace Sandbox.IntegrationTests;

/// <summary>`sandboxctl metrics` on a real VM, its output read back by the Prometheus project's own text-format parser
/// (Debian's python3-prometheus-client), printed once and scraped over HTTP.</summary>
[Collection(SharedVmCollection.Name)]
public sealed class SandboxctlMetricsTests(SharedVmFixture fixture, Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task The_running_VM_is_sampled_from_proc_and_its_agent_and_the_text_parses_as_Prometheus()
    {
        var samples = await SandboxMetricsCollector.CollectAsync(fixture.StateRoot, CancellationToken.None);

        var sample = Assert.Single(samples, s => s.SandboxId == fixture.Vm.SandboxId);
        Assert.Null(sample.AgentError);
        Assert.Equal("live", sample.State);
        Assert.Equal(fixture.Vm.Hypervisor.Pid, sample.Vmm?.Pid);
        Assert.InRange(sample.Vmm!.PssBytes, 1L << 20, sample.Vmm.RssBytes);

        string exposition = PrometheusExposition.Write(samples);
        output.WriteLine(exposition);
        var metrics = await ParseAsync(exposition);

        string sandbox = $"sandbox={fixture.Vm.SandboxId}";
        Assert.Equal(1, metrics[$"sandbox_up{{{sandbox}}}"]);
        Assert.True(metrics[$"sandbox_vmm_pss_bytes{{{sandbox}}}"] > 1 << 20);
        Assert.True(metrics[$"sandbox_vmm_cpu_seconds_total{{{sandbox}}}"] > 0);
        double total = metrics[$"sandbox_guest_memory_total_bytes{{{sandbox}}}"];
        Assert.InRange(total, 64.0 * (1 << 20), 8.0 * (1 << 30));
        Assert.Equal(total, metrics[$"sandbox_guest_memory_used_bytes{{{sandbox}}}"] + metrics[$"sandbox_guest_memory_free_bytes{{{sandbox}}}"]);
        Assert.InRange(metrics[$"sandbox_boot_seconds{{{sandbox}}}"], 0.01, 120);
        Assert.InRange(metrics[$"sandbox_agent_rpc_latency_seconds{{{sandbox}}}"], 0.000_01, 5);
        Assert.Equal(0, metrics[$"sandbox_containers{{{sandbox}}}"]);
        Assert.Equal(1, metrics["sandbox_host_sandboxes{state=live}"]);
        Assert.True(metrics["sandbox_host_total_pss_bytes{}"] >= metrics[$"sandbox_vmm_pss_bytes{{{sandbox}}}"]);
    }

    [Fact]
    public async Task A_scrape_over_HTTP_gets_the_same_metrics_and_other_paths_get_404()
    {
        int port = FreePort();
        using var stop = new CancellationTokenSource();
        var listening = new TaskCompletionSource();
        var serving = MetricsCommand.ServeAsync($"127.0.0.1:{port}", fixture.StateRoot, _ => listening.TrySetResult(), stop.Token);
        await listening.Task.WaitAsync(TimeSpan.FromSeconds(10));
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            using var response = await http.GetAsync($"http://127.0.0.1:{port}/metrics");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
            var metrics = await ParseAsync(await response.Content.ReadAsStringAsync());
            Assert.Equal(1, metrics[$"sandbox_up{{sandbox={fixture.Vm.SandboxId}}}"]);

            using var other = await http.GetAsync($"http://127.0.0.1:{port}/");
            Assert.Equal(HttpStatusCode.NotFound, other.StatusCode);
        }
        finally
        {
            stop.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => serving);
        }
    }

    [Fact]
    public async Task Label_values_are_escaped_so_that_the_parser_gets_them_back()
    {
        var odd = new SandboxSample("a\"b\\c\nd", "dead", null, [], null, null, "no agent", 0);

        var metrics = await ParseAsync(PrometheusExposition.Write([odd]));

        Assert.Equal(0, metrics["sandbox_up{sandbox=a\"b\\c\nd}"]);
        Assert.Equal(1, metrics["sandbox_host_sandboxes{state=dead}"]);
        Assert.DoesNotContain(metrics.Keys, k => k.StartsWith("sandbox_vmm_pss_bytes", StringComparison.Ordinal));
    }

    /// <summary>Every sample as "name{label=value,...}" → value, through prometheus_client.parser; a text it rejects
    /// fails the test with the parser's message.</summary>
    private static async Task<Dictionary<string, double>> ParseAsync(string exposition)
    {
        const string script = """
            import sys, json
            from prometheus_client.parser import text_string_to_metric_families
            out = {}
            for family in text_string_to_metric_families(sys.stdin.read()):
                for s in family.samples:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                    out[s.name + "{" + labels + "}"] = s.value
            print(json.dumps(out))
            """;
        var start = new System.Diagnostics.ProcessStartInfo("/usr/bin/python3", ["-c", script])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using var python = System.Diagnostics.Process.Start(start)!;
        await python.StandardInput.WriteAsync(exposition);
        python.StandardInput.Close();
        var stdout = python.StandardOutput.ReadToEndAsync();
        var stderr = python.StandardError.ReadToEndAsync();
        await python.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(python.ExitCode == 0, $"the Prometheus parser rejected the text: {await stderr}\n{exposition}");
        return JsonSerializer.Deserialize<Dictionary<string, double>>(await stdout)!;
    }

    private static int FreePort()
    {
        using var socket = new TcpListener(IPAddress.Loopback, 0);
        socket.Start();
        return ((IPEndPoint)socket.LocalEndpoint).Port;
    }
}
