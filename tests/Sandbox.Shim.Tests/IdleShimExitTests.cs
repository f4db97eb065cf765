using System.Diagnostics;
using Sandbox.Shim.Daemon;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Shim.Tests;

/// <summary>[runtime] idle_exit: a daemon that containerd lost (no container, no sandbox, no request) exits.</summary>
public sealed class IdleShimExitTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("idle-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task A_daemon_that_never_gets_a_container_exits_after_idle_exit_and_removes_its_socket()
    {
        string config = Path.Combine(_directory, "configuration.toml");
        await File.WriteAllTextAsync(config, "[runtime]\nidle_exit = 2\n");
        string socket = Path.Combine(_directory, "s.sock");
        var start = new ProcessStartInfo(ShimBinary.Locate()) { WorkingDirectory = _directory, RedirectStandardError = true };
        foreach (var argument in new[] { "-namespace", "idle", "-id", "c1", "-address", "/nonexistent/containerd.sock", "-socket", socket, "-bundle", _directory })
            start.ArgumentList.Add(argument);
        start.Environment["SANDBOX_CONFIG"] = config;
        using var daemon = Process.Start(start)!;
        var stderr = daemon.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await daemon.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            daemon.Kill();
            Assert.Fail("the idle daemon was still running 60 s after it started, with idle_exit = 2");
        }

        Assert.Equal(0, daemon.ExitCode);
        Assert.False(File.Exists(socket));
        string log = await stderr; // the shim's log (no containerd log FIFO in the bundle)
        Assert.Contains("idle_exit", log);
        Assert.Contains("containerd has lost this shim", log);
    }

    [Fact]
    public async Task The_watch_ends_only_after_a_whole_idle_period()
    {
        bool idle = false;
        var watch = new IdleShimWatch(() => idle, TimeSpan.FromMilliseconds(500)).WaitAsync(CancellationToken.None);
        await Task.Delay(1500);
        Assert.False(watch.IsCompleted); // busy all along

        idle = true;
        await watch.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task A_busy_moment_restarts_the_idle_period()
    {
        bool idle = true;
        var watch = new IdleShimWatch(() => idle, TimeSpan.FromSeconds(3)).WaitAsync(CancellationToken.None);
        for (int i = 0; i < 6; i++)
        {
            await Task.Delay(300);
            idle = !idle; // never idle for a whole period
        }
        Assert.False(watch.IsCompleted);
        idle = true;
        await watch.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Zero_means_never()
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => new IdleShimWatch(() => true, TimeSpan.Zero).WaitAsync(stop.Token));
    }
}
