using System.Diagnostics;
using Sandbox.Hypervisors;

namespace Sandbox.Shim.Tests.FakeAgent;

/// <summary>
/// An IHypervisor whose "VM" is a `sleep` process (so that it has a pid to watch and kill) and whose agent is the
/// fake agent behind a <see cref="HybridVsockFront"/> in the sandbox's state directory. Lets the VM backend run its
/// whole create/start/exec/delete path against an agent that answers whatever the test wants.
/// </summary>
internal sealed class FakeHypervisor(string agentSocketPath) : IHypervisor
{
    private readonly TaskCompletionSource<VmExit> _exit = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private HybridVsockFront? _front;
    private Process? _vm;
    private bool _stopping;

    public HypervisorCapabilities Capabilities { get; } = new("fake", Acceleration.Tcg, VsockMode.Hybrid, SharedFilesystem: true, Reason: null);

    public int? Pid => _vm?.Id;

    public AgentEndpoint AgentEndpoint => new HybridVsockEndpoint(_front?.FrontPath ?? "", 1024);

    public string ConsoleLogPath { get; private set; } = "";

    public Task PrepareAsync(VmConfig config, CancellationToken cancellationToken)
    {
        ConsoleLogPath = Path.Combine(config.StateDirectory, "console.log");
        File.WriteAllText(ConsoleLogPath, "fake guest console\nsandbox-agent: listening on vsock::1024\n");
        _front = new HybridVsockFront(Path.Combine(config.StateDirectory, "vsock.sock"), agentSocketPath);
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _front!.Start();
        _vm = Process.Start(new ProcessStartInfo("sleep", "3600") { UseShellExecute = false })!;
        _ = WatchAsync(_vm);
        return Task.CompletedTask;
    }

    private async Task WatchAsync(Process vm)
    {
        await vm.WaitForExitAsync();
        _exit.TrySetResult(new VmExit(vm.ExitCode, DateTimeOffset.UtcNow) { StoppedByHost = _stopping });
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        if (_vm is { HasExited: false })
            _vm.Kill();
        if (_front is not null)
            await _front.DisposeAsync();
        _front = null;
        if (_vm is null)
            _exit.TrySetResult(new VmExit(0, DateTimeOffset.UtcNow) { StoppedByHost = true });
    }

    public void Abandon(string reason)
    {
        if (_vm is { HasExited: false })
            _vm.Kill();
    }

    public Task<string> ReleaseBootImagesAsync(CancellationToken cancellationToken) => Task.FromResult("fake: nothing to release");
    public Task<string> SaveAsTemplateAsync(string stateFile, CancellationToken cancellationToken) =>
        throw new NotSupportedException("the fake hypervisor makes no templates");

    public Task<VmExit> WaitForExitAsync(CancellationToken cancellationToken) => _exit.Task.WaitAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None);
        _vm?.Dispose();
    }
}
