using System.Diagnostics;
using System.Text.Json;
using Sandbox.Hypervisors.Processes;
using Sandbox.Hypervisors.Qemu;
using Xunit.Abstractions;

namespace Sandbox.Hypervisors.Tests;

/// <summary>
/// QEMU in a network namespace with a virtio-net card on a tap device there: a real TCG VM (the tiny test guest) in a
/// namespace made by the test (`ip netns add hvt-…`, removed afterwards). Needs root, iproute2 and util-linux.
/// </summary>
public sealed class QemuAdapterNetnsVmTests : IAsyncLifetime
{
    private static readonly TimeSpan Guard = TimeSpan.FromMinutes(3);
    private const string Tap = "tap0_hvt";

    private readonly ITestOutputHelper _output;
    private readonly TempDirectory _dir = new();
    private readonly string _netnsName = "hvt-" + Guid.NewGuid().ToString("N")[..8];

    public QemuAdapterNetnsVmTests(ITestOutputHelper output)
    {
        _output = output;
    }

    private string NetnsPath => "/var/run/netns/" + _netnsName;

    public async Task InitializeAsync()
    {
        await RunAsync("ip", "netns", "add", _netnsName);
        await RunAsync("nsenter", $"--net={NetnsPath}", "--", "ip", "tuntap", "add", "dev", Tap, "mode", "tap");
        await RunAsync("nsenter", $"--net={NetnsPath}", "--", "ip", "link", "set", "dev", Tap, "up");
    }

    public async Task DisposeAsync()
    {
        // Deleting the namespace deletes the tap in it.
        await RunAsync("ip", "netns", "delete", _netnsName);
        _dir.Dispose();
    }

    private static async Task<string> RunAsync(string program, params string[] args)
    {
        var startInfo = new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(startInfo)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{program} {string.Join(' ', args)} failed with {process.ExitCode}: {await stderr}");
        return await stdout;
    }

    private async Task<string[]> TapFlagsAsync()
    {
        var json = await RunAsync("nsenter", $"--net={NetnsPath}", "--", "ip", "-j", "link", "show", "dev", Tap);
        using var document = JsonDocument.Parse(json);
        return document.RootElement[0].GetProperty("flags").EnumerateArray().Select(f => f.GetString()!).ToArray();
    }

    [VmTheory]
    [InlineData(MachineType.Microvm)]
    [InlineData(MachineType.Q35)]
    public async Task Qemu_runs_in_the_namespace_with_a_card_on_the_tap_and_the_daemon_stays_outside(MachineType machine)
    {
        Assert.DoesNotContain("LOWER_UP", await TapFlagsAsync()); // no carrier while nothing has the tap open

        await using var vm = new QemuAdapter();
        await vm.PrepareAsync(new VmConfig
        {
            SandboxId = "netns-" + machine.ToString().ToLowerInvariant(),
            StateDirectory = Path.Combine(_dir.Path, "state"),
            KernelPath = GuestImage.KernelPath!,
            InitrdPath = await GuestImage.TinyInitramfsAsync(),
            MachineType = machine,
            ExtraKernelParameters = "tinyinit=hold",
            NetworkNamespacePath = NetnsPath,
            NetworkInterfaces = [new VmNetworkInterface(Tap, "02:00:0a:d5:00:02")],
        }, CancellationToken.None);
        await vm.StartAsync(CancellationToken.None).WaitAsync(Guard);

        var qemuPid = vm.Pid!.Value;
        Assert.Equal(NetworkNamespaceIdentity.OfPath(NetnsPath), NetworkNamespaceIdentity.OfProcess(qemuPid));
        Assert.NotEqual(NetworkNamespaceIdentity.OfProcess(Environment.ProcessId), NetworkNamespaceIdentity.OfProcess(qemuPid));
        // nsenter exec'd QEMU: the pid is QEMU's own.
        Assert.StartsWith("qemu-system-x86", (await File.ReadAllTextAsync($"/proc/{qemuPid}/comm")).Trim());
        if (vm.VsockDaemonPid is { } daemonPid)
            Assert.Equal(NetworkNamespaceIdentity.OfProcess(Environment.ProcessId), NetworkNamespaceIdentity.OfProcess(daemonPid));
        // QEMU holds the tap open: the carrier is up.
        Assert.Contains("LOWER_UP", await TapFlagsAsync());

        var commandLine = await File.ReadAllTextAsync(vm.Plan.Spec.Files.QemuCommandLine);
        Assert.Contains($"--net={NetnsPath}", commandLine);
        Assert.Contains($"tap,id=net0,ifname={Tap},script=no,downscript=no", commandLine);
        _output.WriteLine(commandLine);

        await vm.StopAsync(CancellationToken.None).WaitAsync(Guard);
        Assert.False(Directory.Exists($"/proc/{qemuPid}"));
        Assert.DoesNotContain("LOWER_UP", await TapFlagsAsync());
    }
}
