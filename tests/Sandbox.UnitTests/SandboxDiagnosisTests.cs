using Sandbox.Ctl.Doctor;
using Sandbox.Runtime.PostMortem;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.UnitTests;

/// <summary>The rules of `sandboxctl doctor` over hand-made evidence, in the words the runtime, QEMU, the guest kernel
/// and crun really use (copied from real runs; the end-to-end tests make each fault happen through containerd).</summary>
public sealed class SandboxDiagnosisTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 5, 12, 0, 0, TimeSpan.Zero);

    private static SandboxEvidence Ended(string reason, string? error = null, IReadOnlyList<SandboxEvent>? events = null,
        IReadOnlyList<string>? console = null, IReadOnlyList<string>? qemu = null, bool failed = true) => new()
    {
        SandboxId = "pod",
        Where = "/run/sandbox/sandboxes/.post-mortem/pod.json",
        PostMortem = new PostMortemRecord { SandboxId = "pod", EndedAt = Now, Reason = reason, Failed = failed, Error = error },
        Metadata = Metadata(),
        Events = events ?? [],
        EventsSource = "events",
        Console = new LogTail("console.log", console ?? []),
        Qemu = new LogTail("qemu.log", qemu ?? []),
        Now = Now,
    };

    private static SandboxMetadata Metadata() => new()
    {
        SandboxId = "pod", CreatedAt = Now.AddMinutes(-3), VmmPid = 4242, Hypervisor = "qemu", Acceleration = "tcg", VsockMode = "hybrid",
        AgentEndpoint = "hybrid vsock", ConsoleLog = "console.log", KernelPath = "/guest/vmlinux", InitrdPath = "/guest/initramfs.cpio",
        Vcpus = 1, MemoryMiB = 256,
    };

    private static SandboxEvent Event(string kind, string? container = null, int? status = null, bool oom = false, long? limit = null, string message = "") =>
        new() { Time = Now, Kind = kind, ContainerId = container, ExitStatus = status, OomKilled = oom, MemoryLimitBytes = limit, Message = message };

    [Theory]
    [InlineData("the guest image file /x/vmlinux does not exist (key hypervisor.qemu.kernel in /etc/sandbox/configuration.toml); build it", "the guest kernel /x/vmlinux does not exist")]
    [InlineData("the guest image file /x/initramfs.cpio does not exist (key hypervisor.qemu.initrd in c.toml)", "the guest initramfs /x/initramfs.cpio does not exist")]
    [InlineData("sandbox pod: guest kernel /y/vmlinux does not exist (build the guest image, or check the kernel path in the configuration)", "the guest kernel /y/vmlinux does not exist")]
    public void A_missing_guest_file_is_named_with_its_path(string error, string cause)
    {
        var diagnosis = SandboxDiagnosis.Diagnose(Ended("boot failed: " + error, error));
        Assert.Equal(Verdict.Problem, diagnosis.Verdict);
        Assert.Contains(cause, diagnosis.Cause);
        Assert.Contains("make image", diagnosis.Fix);
    }

    [Fact]
    public void A_host_without_KVM_vsock_or_tun_is_named()
    {
        const string kvm = "sandbox pod: KVM was requested but cannot be used: /dev/kvm does not exist. Use acceleration auto or tcg.";
        Assert.Contains("the host lacks KVM", SandboxDiagnosis.Diagnose(Ended("boot failed: " + kvm, kvm)).Cause);
        const string vsock = "sandbox pod: no host<->guest vsock: vhost-device-vsock not found at /nonexistent";
        Assert.Contains("the host has no vsock", SandboxDiagnosis.Diagnose(Ended("boot failed: " + vsock, vsock)).Cause);
        const string tun = "sandbox pod: pod network in /var/run/netns/cni-1: `ip tuntap add dev tap0_kata mode tap` failed: open: No such file or directory";
        Assert.Contains("cannot create the pod's tap device", SandboxDiagnosis.Diagnose(Ended("boot failed: " + tun, tun)).Cause);
    }

    [Fact]
    public void QEMU_refusing_the_kernel_names_the_kernel()
    {
        const string error = "sandbox pod: the VM exited (code 1) before its agent answered.";
        var diagnosis = SandboxDiagnosis.Diagnose(Ended("boot failed: " + error, error,
            qemu: ["2026-12-05T12:00:00.000Z qemu-system-x86_64: Error loading uncompressed kernel without PVH ELF Note"]));
        Assert.Contains("QEMU could not load the guest kernel /guest/vmlinux: qemu-system-x86_64: Error loading uncompressed kernel", diagnosis.Cause);
    }

    [Fact]
    public void A_panic_after_a_failed_initramfs_unpack_blames_the_initramfs()
    {
        const string error = "sandbox pod: the VM exited (code 0) before its agent answered.";
        var diagnosis = SandboxDiagnosis.Diagnose(Ended("boot failed: " + error, error, console:
        [
            "[    0.580997] Initramfs unpacking failed: invalid magic at start of compressed archive",
            "[    0.790143] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)",
            "[    0.791915]  <TASK>",
        ]));
        Assert.Equal("the guest kernel panicked while booting: Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)", diagnosis.Cause);
        Assert.Contains("the initramfs /guest/initramfs.cpio is corrupt", diagnosis.Fix);
        Assert.DoesNotContain(diagnosis.Evidence, l => l.Text.Contains("<TASK>"));
    }

    [Fact]
    public void An_agent_that_never_answered_says_how_long_it_was_waited_for()
    {
        const string error = "sandbox pod: the guest console never showed 'sandbox-agent: listening on' within 15 s: the agent did not start.\n" +
                             "Boot diagnosis: the VMM (pid 1) runs and used 14.0 s of CPU in 15 s; the console log has 9000 bytes.";
        var diagnosis = SandboxDiagnosis.Diagnose(Ended("boot failed: " + error, error, console: ["[    1.2] Run /bin/sleep as init process"]));
        Assert.Contains("its agent never answered", diagnosis.Cause);
        Assert.Contains("within 15 s", diagnosis.Cause);
        Assert.Contains(diagnosis.Evidence, l => l.Text.StartsWith("Boot diagnosis:"));
    }

    [Theory]
    [InlineData("QEMU (pid 4242) was killed by signal 9. QEMU said:\n  (nothing)", "QEMU (pid 4242) was killed by signal 9, not by the runtime")]
    [InlineData("QEMU (pid 4242) exited with code 1. QEMU said:\n  boom", "QEMU (pid 4242) died with exit code 1")]
    [InlineData("vhost-device-vsock (pid 77) was killed by signal 9 while the VM ran, which cut the host off from the agent; QEMU (pid 4242) was killed", "the vsock daemon died: vhost-device-vsock (pid 77) was killed by signal 9")]
    [InlineData("the agent of sandbox pod answered no Health check for 60 s (agent.liveness_timeout = 60 s): the guest is taken for hung; QEMU (pid 4242) was killed", "the guest stopped answering")]
    public void A_VM_that_died_is_named_by_what_ended_it(string message, string cause)
    {
        var evidence = Ended("its VM exited unexpectedly", events: [Event(SandboxEvent.VmExit, status: 137, message: message)]);
        var diagnosis = SandboxDiagnosis.Diagnose(evidence);
        Assert.Equal(Verdict.Problem, diagnosis.Verdict);
        Assert.Contains(cause, diagnosis.Cause);
    }

    [Theory]
    [InlineData("executable file `/no/such/program` not found in $PATH: No such file or directory")]
    [InlineData("exec: \"/no/such/program\": stat /no/such/program: no such file or directory")]
    public void A_missing_executable_is_named_with_its_path(string crun)
    {
        var evidence = Ended("stopped", failed: false, events: [Event(SandboxEvent.ContainerFailed, "web", message: $"start container web: agent: crun start: {crun}")]);
        Assert.Equal("container web could not start: its executable /no/such/program does not exist in the image", SandboxDiagnosis.Diagnose(evidence).Cause);
    }

    [Fact]
    public void An_OOM_kill_is_named_with_the_containers_limit_or_its_absence()
    {
        var limited = Ended("stopped", failed: false, events: [Event(SandboxEvent.ContainerExit, "hog", 137, oom: true, limit: 32L << 20)]);
        Assert.Equal("container hog was OOM-killed (memory limit 32 MiB)", SandboxDiagnosis.Diagnose(limited).Cause);
        var unlimited = Ended("stopped", failed: false, events: [Event(SandboxEvent.ContainerExit, "hog", 137, oom: true)]);
        Assert.Contains("no memory limit of its own", SandboxDiagnosis.Diagnose(unlimited).Cause);
    }

    [Fact]
    public void A_sandbox_that_ended_without_a_fault_is_healthy_and_lists_its_exit_codes()
    {
        var diagnosis = SandboxDiagnosis.Diagnose(Ended("stopped by the runtime", failed: false, events: [Event(SandboxEvent.ContainerExit, "job", 3)]));
        Assert.Equal(Verdict.Healthy, diagnosis.Verdict);
        Assert.StartsWith("no fault found: it ended at 2026-12-05 12:00:00Z", diagnosis.Cause);
        Assert.Contains(diagnosis.Evidence, l => l.Text.EndsWith("container job exited with status 3"));
    }

    [Fact]
    public void A_live_sandbox_is_healthy_when_its_agent_answers_and_a_problem_when_its_shim_is_gone()
    {
        var live = new SandboxEvidence
        {
            SandboxId = "pod", Where = "/run/sandbox/sandboxes/pod", Liveness = "live", Metadata = Metadata(), VmmRunning = true,
            Guest = new Sandbox.Agent.Protocol.GetGuestInfoResponse { KernelRelease = "6.1.0", MemTotalBytes = 200 << 20, MemAvailableBytes = 150 << 20 },
            Containers = ["pod", "web"], Now = Now,
        };
        var healthy = SandboxDiagnosis.Diagnose(live);
        Assert.Equal(Verdict.Healthy, healthy.Verdict);
        Assert.Equal("healthy: up 3m00s, VM: QEMU pid 4242 (tcg, hybrid vsock, 1 vCPU, 256 MiB), containers: pod, web", healthy.Cause);

        var dead = SandboxDiagnosis.Diagnose(live with { Liveness = "dead", ShimPid = 99, Guest = null });
        Assert.Equal(Verdict.Problem, dead.Verdict);
        Assert.Contains("its shim daemon (pid 99) is gone", dead.Cause);
        Assert.Contains("sandboxctl gc", dead.Fix);

        var silent = SandboxDiagnosis.Diagnose(live with { Guest = null, AgentError = "the agent did not answer GetGuestInfo within 5 s" });
        Assert.Contains("its agent does not answer", silent.Cause);
    }
}
