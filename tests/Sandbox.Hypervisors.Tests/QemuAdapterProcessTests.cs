using Sandbox.Hypervisors.HostDetection;
using Sandbox.Hypervisors.Processes;
using Sandbox.Hypervisors.Qemu;

namespace Sandbox.Hypervisors.Tests;

/// <summary>The adapter's process handling against <see cref="FakeQemu"/> (and fake vsock daemons).</summary>
public sealed class QemuAdapterProcessTests
{
    private static readonly TimeSpan Guard = TimeSpan.FromMinutes(1);

    private static readonly QemuAdapterOptions FastOptions = new()
    {
        QuitTimeout = TimeSpan.FromMilliseconds(300),
        TerminateGrace = TimeSpan.FromMilliseconds(300),
    };

    private static QemuHostFacts Facts(string qemuPath, VsockProbeResult vsock) => new(
        qemuPath, "fake", new KvmProbeResult(false, null, null, "no kvm in tests"), vsock,
        new TscFrequencyResult(2_000_000, TscSource.Sysfs, "fake"));

    private static readonly VsockProbeResult KernelVsock = new(VsockMode.Kernel, null, null, "fake kernel vsock");

    private static QemuAdapter Adapter(FakeQemu fake, VsockProbeResult? vsock = null, QemuAdapterOptions? options = null) =>
        new(options ?? FastOptions, null, _ => Facts(fake.Path, vsock ?? KernelVsock));

    private static VmConfig Config(FakeQemu fake) => new()
    {
        SandboxId = "fake1",
        StateDirectory = fake.StateDirectory,
        KernelPath = fake.Kernel,
        InitrdPath = fake.Initrd,
    };

    private static bool Alive(int pid) => Directory.Exists($"/proc/{pid}") &&
                                          !File.ReadAllText($"/proc/{pid}/stat").Split(' ')[2].Equals("Z");

    [FakeQemuFact]
    public async Task A_taken_guest_cid_is_retried_with_another()
    {
        using var fake = new FakeQemu("cid-busy-once");
        await using var vm = Adapter(fake);
        await vm.PrepareAsync(Config(fake), CancellationToken.None);
        await vm.StartAsync(CancellationToken.None).WaitAsync(Guard);

        var calls = fake.Calls();
        Assert.Equal(2, calls.Count);
        var cids = calls.Select(args => args.Single(a => a.Contains("guest-cid="))).ToList();
        Assert.NotEqual(cids[0], cids[1]);
        var endpoint = Assert.IsType<KernelVsockEndpoint>(vm.AgentEndpoint);
        Assert.EndsWith($"guest-cid={endpoint.Cid}", cids[1]);
        Assert.Contains($"guest-cid={endpoint.Cid}", File.ReadAllText(vm.Plan.Spec.Files.QemuCommandLine));

        await vm.StopAsync(CancellationToken.None).WaitAsync(Guard);
        var exit = await vm.WaitForExitAsync(CancellationToken.None).WaitAsync(Guard);
        Assert.Equal(0, exit.ExitCode); // QMP quit
        Assert.True(exit.StoppedByHost);
    }

    [FakeQemuFact]
    public async Task A_configured_guest_cid_is_not_retried()
    {
        using var fake = new FakeQemu("cid-busy-once");
        await using var vm = Adapter(fake);
        await vm.PrepareAsync(Config(fake) with { GuestCid = 77 }, CancellationToken.None);
        var error = await Assert.ThrowsAsync<HypervisorException>(() => vm.StartAsync(CancellationToken.None).WaitAsync(Guard));
        Assert.Contains("unable to set guest cid: Address already in use", error.Message);
        Assert.Single(fake.Calls());
    }

    [FakeQemuFact]
    public async Task A_vmm_that_ignores_quit_and_sigterm_is_killed()
    {
        using var fake = new FakeQemu("deaf");
        await using var vm = Adapter(fake);
        await vm.PrepareAsync(Config(fake), CancellationToken.None);
        await vm.StartAsync(CancellationToken.None).WaitAsync(Guard);
        var pid = vm.Pid!.Value;

        await vm.StopAsync(CancellationToken.None).WaitAsync(Guard);
        var exit = await vm.WaitForExitAsync(CancellationToken.None).WaitAsync(Guard);
        Assert.Equal(128 + PosixSignal.SigKill, exit.ExitCode);
        Assert.True(exit.StoppedByHost);
        Assert.False(Alive(pid));
        Assert.False(File.Exists(vm.Plan.Spec.Files.QmpSocket));
    }

    [FakeQemuFact]
    public async Task Cancelling_during_start_up_kills_the_vmm()
    {
        using var fake = new FakeQemu("never-ready");
        await using var vm = Adapter(fake);
        await vm.PrepareAsync(Config(fake), CancellationToken.None);
        using var startup = new CancellationTokenSource();
        var start = vm.StartAsync(startup.Token);
        await WaitUntilAsync(() => vm.Pid is not null && File.Exists(vm.Plan.Spec.Files.QmpSocket));
        var pid = vm.Pid!.Value;
        await startup.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => start.WaitAsync(Guard));
        Assert.False(Alive(pid));
        Assert.False(File.Exists(vm.Plan.Spec.Files.QmpSocket));
        var exit = await vm.WaitForExitAsync(CancellationToken.None).WaitAsync(Guard);
        Assert.Equal(128 + PosixSignal.SigKill, exit.ExitCode);
    }

    [FakeQemuFact]
    public async Task Stop_aborts_a_start_in_progress()
    {
        using var fake = new FakeQemu("never-ready");
        await using var vm = Adapter(fake);
        await vm.PrepareAsync(Config(fake), CancellationToken.None);
        var start = vm.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => vm.Pid is not null);
        var pid = vm.Pid!.Value;

        await vm.StopAsync(CancellationToken.None).WaitAsync(Guard);
        var error = await Assert.ThrowsAsync<HypervisorException>(() => start.WaitAsync(Guard));
        Assert.Contains("aborted by StopAsync", error.Message);
        Assert.False(Alive(pid));
        await Assert.ThrowsAsync<InvalidOperationException>(() => vm.StartAsync(CancellationToken.None));
    }

    [FakeQemuFact]
    public async Task A_vmm_never_reporting_running_times_out_with_a_clear_error()
    {
        using var fake = new FakeQemu("never-ready");
        await using var vm = Adapter(fake, options: FastOptions with { ReadyTimeout = TimeSpan.FromMilliseconds(500) });
        await vm.PrepareAsync(Config(fake), CancellationToken.None);
        var error = await Assert.ThrowsAsync<HypervisorException>(() => vm.StartAsync(CancellationToken.None).WaitAsync(Guard));
        Assert.Contains("did not report the VM running", error.Message);
        Assert.False(Alive(vm.Pid!.Value));
    }

    [FakeQemuFact]
    public async Task A_vsock_daemon_that_fails_is_reported_with_its_output_and_qemu_is_not_started()
    {
        using var fake = new FakeQemu("normal");
        var hybrid = FakeVsockDaemon(fake, "#!/bin/sh\necho \"error: unexpected argument '--guest-cid'\" >&2\nexit 2\n");
        await using var vm = Adapter(fake, hybrid);
        await vm.PrepareAsync(Config(fake), CancellationToken.None);

        var error = await Assert.ThrowsAsync<HypervisorException>(() => vm.StartAsync(CancellationToken.None).WaitAsync(Guard));
        Assert.Contains("vhost-device-vsock", error.Message);
        Assert.Contains("unexpected argument '--guest-cid'", error.Message);
        Assert.Contains(vm.Plan.Spec.Files.VsockDaemonCommandLine, error.Message);
        Assert.Empty(fake.Calls());
        Assert.Null(vm.Pid);
        var exit = await vm.WaitForExitAsync(CancellationToken.None).WaitAsync(Guard);
        Assert.Equal(-1, exit.ExitCode);
    }

    [FakeQemuFact]
    public async Task A_vsock_daemon_that_never_creates_its_socket_times_out_and_is_killed()
    {
        using var fake = new FakeQemu("normal");
        var hybrid = FakeVsockDaemon(fake, "#!/bin/sh\nexec sleep 300\n");
        await using var vm = Adapter(fake, hybrid, FastOptions with { DaemonSocketTimeout = TimeSpan.FromMilliseconds(300) });
        await vm.PrepareAsync(Config(fake), CancellationToken.None);

        var error = await Assert.ThrowsAsync<HypervisorException>(() => vm.StartAsync(CancellationToken.None).WaitAsync(Guard));
        Assert.Contains("did not create", error.Message);
        Assert.False(Alive(vm.VsockDaemonPid!.Value));
    }

    [FakeQemuFact]
    public async Task A_vsock_daemon_that_dies_under_a_running_vm_stops_qemu_and_is_named_as_the_cause()
    {
        using var fake = new FakeQemu("normal");
        // creates its vhost-user socket (what the adapter waits for), then dies while the VM runs
        var hybrid = FakeVsockDaemon(fake, "#!/bin/sh\ntouch \"$4\"\necho 'vring worker stopped' >&2\nsleep 1\nexit 1\n");
        await using var vm = Adapter(fake, hybrid);
        await vm.PrepareAsync(Config(fake), CancellationToken.None);
        await vm.StartAsync(CancellationToken.None).WaitAsync(Guard);
        int qemuPid = vm.Pid!.Value;

        var exit = await vm.WaitForExitAsync(CancellationToken.None).WaitAsync(Guard);

        Assert.False(exit.StoppedByHost); // a VM loss: the runtime reports every process killed
        Assert.Contains("vhost-device-vsock", exit.Diagnostics);
        Assert.Contains("exited with code 1 while the VM ran", exit.Diagnostics);
        Assert.Contains("vring worker stopped", exit.Diagnostics);
        Assert.False(Alive(qemuPid));
    }

    /// <summary>A shell script standing in for vhost-device-vsock (its socket path is $4), as a hybrid vsock probe result.</summary>
    private static VsockProbeResult FakeVsockDaemon(FakeQemu fake, string script)
    {
        var daemon = Path.Combine(fake.Directory, "vhost-device-vsock");
        File.WriteAllText(daemon, script);
        File.SetUnixFileMode(daemon, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        return new VsockProbeResult(VsockMode.Hybrid, "no device", daemon, "fake hybrid");
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var guard = new CancellationTokenSource(Guard);
        while (!condition())
            await Task.Delay(10, guard.Token);
    }
}
