using Sandbox.Agent.Protocol;
using Sandbox.Hypervisors;
using Sandbox.Hypervisors.Processes;

namespace Sandbox.Runtime.Agent;

/// <summary>
/// Waits until a freshly started VM's agent answers Health, failing at once (with the console's last lines) when the
/// VMM exits first.
/// With hybrid vsock it first waits for the agent's "listening" line on the guest console: vhost-device-vsock 0.3
/// can wedge for good when a host CONNECT arrives before the guest's vsock driver is up (seen in 4 of ~60 boots with
/// 20 ms retries; never when the first CONNECT waited for that line, which costs no time). images/README.md has the
/// measurements.
/// </summary>
public static class AgentReadiness
{
    /// <summary>What the agent prints on the console once it listens (agent/Sandbox.Agent/Program.cs).</summary>
    public const string ListeningMarker = "sandbox-agent: listening on ";

    private static readonly TimeSpan ConsolePollInterval = TimeSpan.FromMilliseconds(10);

    public static async Task<HealthResponse> WaitAsync(IHypervisor hypervisor, AgentConnection agent, string sandboxId,
        TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var stopWaiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var ready = WaitForHealthAsync(hypervisor, agent, timeout, stopWaiting.Token);
        var exited = hypervisor.WaitForExitAsync(stopWaiting.Token);
        var first = await Task.WhenAny(ready, exited);
        stopWaiting.Cancel();
        if (first == ready)
            return await ready;
        var exit = await exited.ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : null, TaskScheduler.Default);
        throw new InvalidOperationException(
            $"sandbox {sandboxId}: the VM exited (code {exit?.ExitCode.ToString() ?? "?"}) before its agent answered. " +
            $"Last console lines ({hypervisor.ConsoleLogPath}):\n{ConsoleLogTail.Read(hypervisor.ConsoleLogPath)}");
    }

    private static async Task<HealthResponse> WaitForHealthAsync(IHypervisor hypervisor, AgentConnection agent, TimeSpan timeout,
        CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        try
        {
            if (hypervisor.AgentEndpoint is HybridVsockEndpoint)
                await WaitForConsoleLineAsync(hypervisor.ConsoleLogPath, ListeningMarker, agent.SandboxId, timeout, cancellationToken);
            var remaining = deadline - DateTime.UtcNow;
            return await agent.WaitUntilReadyAsync(remaining > TimeSpan.Zero ? remaining : TimeSpan.FromSeconds(1), cancellationToken);
        }
        catch (TimeoutException e)
        {
            // say what the host saw: a starved VM, a guest that never reached its console, or an agent that failed
            throw new TimeoutException($"{e.Message}\n{BootStallDiagnosis.Describe(hypervisor.Pid, hypervisor.ConsoleLogPath, timeout)}", e);
        }
    }

    /// <summary>Waits until <paramref name="marker"/> appears in the console log, which the guest is still writing.</summary>
    public static Task WaitForConsoleLineAsync(string consoleLog, string marker, string sandboxId, TimeSpan timeout,
        CancellationToken cancellationToken) =>
        WaitForConsoleLineAsync(
            () => File.Exists(consoleLog) ? new FileStream(consoleLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0) : null,
            consoleLog, marker, sandboxId, timeout, cancellationToken);

    /// <summary>The same, reading the log through <paramref name="openConsole"/> (null: not there yet).</summary>
    public static async Task WaitForConsoleLineAsync(Func<Stream?> openConsole, string consoleLog, string marker, string sandboxId,
        TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        long offset = 0;
        var carry = "";
        var buffer = new byte[64 * 1024];
        while (DateTime.UtcNow < deadline)
        {
            await using (var stream = openConsole())
            {
                if (stream is not null)
                {
                    // Advance by what was read, never to the log's length afterwards: the guest keeps writing, and
                    // what it wrote between the last read and that length would be skipped (the marker among it).
                    stream.Seek(offset, SeekOrigin.Begin);
                    int read;
                    while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
                    {
                        offset += read;
                        var text = carry + System.Text.Encoding.UTF8.GetString(buffer, 0, read);
                        if (text.Contains(marker, StringComparison.Ordinal))
                            return;
                        carry = text.Length > marker.Length ? text[^marker.Length..] : text;
                    }
                }
            }
            await Task.Delay(ConsolePollInterval, cancellationToken);
        }
        throw new TimeoutException(
            $"sandbox {sandboxId}: the guest console never showed '{marker.Trim()}' within {timeout.TotalSeconds:0.#} s: " +
            $"the agent did not start. Last console lines ({consoleLog}):\n{ConsoleLogTail.Read(consoleLog)}");
    }
}
