using Sandbox.Cri.Tests.Api;
using Sandbox.Cri.Tests.Fixture;
using Sandbox.Hypervisors.Processes;
using Sandbox.Runtime.Cgroups;
using Sandbox.Shim.Tests.Containerd;
using Xunit;
using Xunit.Abstractions;

namespace Sandbox.Cri.Tests;

/// <summary>
/// The pod tests every VM handler adds to <see cref="CriPodTests{TFixture}"/>: what a pod's VM costs on the host,
/// where the kubelet looks for it (the pod's cgroup), and what it sees when the VM itself runs out of memory there.
/// </summary>
public abstract class VmCriPodTests<TFixture>(TFixture fixture, ITestOutputHelper output) : CriPodTests<TFixture>(fixture, output)
    where TFixture : CriFixture
{
    /// <summary>QEMU and vhost-device-vsock live in the pod's cgroup, which is limited to the VM's memory plus the
    /// VMM's overhead and is charged with the VM's memory; PodSandboxStats (1.7+) reads it; removal leaves nothing.</summary>
    [Fact]
    public async Task The_vm_runs_in_the_pods_host_cgroup_which_is_charged_with_its_memory()
    {
        var pod = await Fixture.RunPodAsync("host-cgroup", new LinuxContainerResources { MemoryLimitInBytes = 128L << 20 });
        try
        {
            await Fixture.StartContainerAsync(pod, "main", ["sleep", "2147483647"]);
            PodHostCgroupCheck.AssertVmProcessesAreInThePodsCgroup(Fixture, pod, Output);

            var (limit, usage, qemuRss) = PodHostCgroupCheck.Memory(Fixture, pod);
            Output.WriteLine($"pod cgroup {PodHostCgroupCheck.MemoryDirectory(Fixture, pod)}: limit {limit >> 20} MiB, usage {usage >> 20} MiB; QEMU RSS {qemuRss >> 20} MiB");
            Assert.Equal(PodHostCgroupCheck.ExpectedLimit(256 + 128), limit); // default_memory + the pod's limit + host_memory_overhead
            Assert.True(usage >= qemuRss * 8 / 10, $"the pod cgroup is charged {usage >> 20} MiB, QEMU has {qemuRss >> 20} MiB resident");

            // containerd's CRI reads PodSandboxStats from that cgroup on the host: the VM's cost is the pod's
            var stats = (await Fixture.CallAsync($"PodSandboxStats of {pod}",
                () => Runtime.PodSandboxStatsAsync(new PodSandboxStatsRequest { PodSandboxId = pod.Id }).ResponseAsync)).Stats;
            Output.WriteLine($"PodSandboxStats: {stats.Linux}");
            Assert.True(stats.Linux.Memory.WorkingSetBytes?.Value > 64 * 1024 * 1024,
                $"the pod's working set should hold the VM's memory: {stats.Linux.Memory}");
            Assert.True(stats.Linux.Cpu.UsageCoreNanoSeconds?.Value > 0, $"the pod's CPU usage should hold the VM's: {stats.Linux.Cpu}");
        }
        finally
        {
            await Fixture.StopAndRemovePodAsync(pod);
        }
        var leftovers = await PodLeftovers.WaitUntilGoneAsync(Fixture, pod); // its host cgroup included
        Assert.True(leftovers.Count == 0, $"left after the pod's removal:\n{string.Join('\n', leftovers)}");
    }

    /// <summary>Issue 14 on Kubernetes pods: with [hypervisor.qemu] template = true, two pods start as clones of one
    /// template (one network card), each with its own address on its card, and reach each other over the pod network.</summary>
    [Fact]
    public async Task With_template_on_pods_start_as_clones_with_their_own_addresses_and_reach_each_other()
    {
        var templates = await Fixture.UseTemplatesAsync();
        var pods = new List<TestPod>();
        try
        {
            foreach (string name in new[] { "clone-a", "clone-b" })
            {
                var pod = await Fixture.RunPodAsync(name);
                pods.Add(pod);
                await Fixture.StartContainerAsync(pod, "main", ["sleep", "2147483647"]);
                var metadata = Sandbox.Runtime.Sandboxes.SandboxMetadata.TryRead(Path.Combine(Fixture.StateRoot, pod.Id, "sandbox.json"));
                Assert.NotNull(metadata);
                string journal = Path.Combine(Fixture.StateRoot, pod.Id, "shim.log");
                Assert.True(metadata.Start?.StartsWith("cloned from template", StringComparison.Ordinal) == true,
                    $"{pod} started {metadata.Start}; its shim said:\n{(File.Exists(journal) ? await File.ReadAllTextAsync(journal) : "(no shim.log)")}");
            }
            var addresses = new List<string>();
            foreach (var pod in pods)
            {
                string ip = (await Fixture.PodStatusAsync(pod)).Status.Network.Ip;
                var shown = await Fixture.ExecAsync(pod, "main", "busybox", "ip", "-o", "-4", "addr");
                Assert.True(shown.ExitCode == 0 && shown.Stdout.Contains($"inet {ip}/", StringComparison.Ordinal), $"{pod}: {ip} not on its card: {shown}");
                addresses.Add(ip);
            }
            Assert.NotEqual(addresses[0], addresses[1]);
            var ping = await Fixture.ExecAsync(pods[0], "main", "busybox", "ping", "-c", "1", "-W", "5", addresses[1]);
            Assert.True(ping.ExitCode == 0, $"clone-a cannot reach clone-b at {addresses[1]}: {ping}");
        }
        finally
        {
            await templates.DisposeAsync();
            foreach (var pod in pods)
                await Fixture.StopAndRemovePodAsync(pod);
        }
    }

    /// <summary>Issue 11 on a Kubernetes pod: QEMU runs jailed (as /proc shows) in the pod's network namespace, which
    /// the jailer entered, with the pod's tap as an open descriptor (opened by the jailer: QEMU has no CAP_NET_ADMIN and
    /// no /dev/net/tun), and the pod's network works.</summary>
    [Fact]
    public async Task The_pods_qemu_runs_jailed_in_the_pods_network_namespace_with_its_tap_passed_as_a_descriptor()
    {
        var pod = await Fixture.RunPodAsync("jailed");
        try
        {
            await Fixture.StartContainerAsync(pod, "main", ["sleep", "2147483647"]);
            var qemuProcess = LeftoverVmProcesses.Find(Path.Combine(Fixture.StateRoot, pod.Id)).First(p => p.CommandLine.Contains("qemu-system", StringComparison.Ordinal));
            var qemu = Sandbox.Shim.Tests.Confinement.ProcessConfinement.Read(qemuProcess.Pid);
            qemu.AssertJailed(Sandbox.Hypervisors.Jail.QemuJail.ShareCapabilities, ["/var/lib/cni", "/etc/cni"]);
            Assert.NotEqual(new FileInfo("/proc/self/ns/net").LinkTarget, new FileInfo($"/proc/{qemuProcess.Pid}/ns/net").LinkTarget);
            Assert.Equal("/dev/net/tun", new FileInfo($"/proc/{qemuProcess.Pid}/fd/{Sandbox.Hypervisors.Jail.QemuJail.FirstTapDescriptor}").LinkTarget);
            Assert.False(qemu.Sees("/dev/net/tun"), "QEMU's jail holds /dev/net/tun");
            Output.WriteLine($"QEMU {qemuProcess.Pid}: root holds {string.Join(", ", qemu.RootEntries())}; CapEff {string.Join(",", qemu.EffectiveCapabilityNames)}");
        }
        finally
        {
            await Fixture.StopAndRemovePodAsync(pod);
        }
        var leftovers = await PodLeftovers.WaitUntilGoneAsync(Fixture, pod);
        Assert.True(leftovers.Count == 0, $"left after the pod's removal:\n{string.Join('\n', leftovers)}");
    }

    /// <summary>A kubelet with the systemd cgroup driver gives a slice as cgroup_parent; containerd then names the
    /// sandbox's cgroup "slice:cri-containerd:id". The VM goes where systemd would put that scope, and the pod's
    /// containers (whose cgroupsPath has the same form) run in the guest.</summary>
    [Fact]
    public async Task A_systemd_slice_parent_puts_the_vm_in_the_scope_systemd_would_name()
    {
        string slice = "sbxtest" + Guid.NewGuid().ToString("N")[..8] + ".slice";
        try
        {
            var pod = await Fixture.RunPodAsync("systemd-parent", new LinuxContainerResources { MemoryLimitInBytes = 64L << 20 }, privileged: false,
                NamespaceMode.Pod, cgroupParent: "/" + slice);
            try
            {
                await Fixture.StartContainerAsync(pod, "main", ["sleep", "2147483647"]);
                var echo = await Fixture.ExecAsync(pod, "main", "echo", "alive");
                Assert.True(echo.ExitCode == 0 && echo.Stdout.Trim() == "alive", echo.ToString());
                string expected = $"/{slice}/cri-containerd-{pod.Id}.scope";
                var qemu = LeftoverVmProcesses.Find(Path.Combine(Fixture.StateRoot, pod.Id)).First(p => p.CommandLine.Contains("qemu-system", StringComparison.Ordinal));
                var memoryLine = File.ReadAllLines($"/proc/{qemu.Pid}/cgroup").First(l => l.Contains(":memory:", StringComparison.Ordinal) || l.StartsWith("0::", StringComparison.Ordinal));
                Output.WriteLine($"QEMU {qemu.Pid}: {memoryLine}");
                Assert.EndsWith(":" + expected, memoryLine);
            }
            finally
            {
                await Fixture.StopAndRemovePodAsync(pod);
            }
        }
        finally
        {
            // the slice is this test's own parent (the fixture removes only its cgroup_parent)
            await Task.Delay(TimeSpan.FromSeconds(1));
            foreach (var hierarchy in HostCgroupMounts.Read())
            {
                string directory = Path.Combine(hierarchy.MountPoint, slice);
                for (int attempt = 0; attempt < 100 && Directory.Exists(directory); attempt++)
                {
                    try
                    {
                        Directory.Delete(directory);
                    }
                    catch (IOException)
                    {
                        await Task.Delay(100); // the pod's scope is removed as its shim exits
                    }
                }
                Assert.False(Directory.Exists(directory), $"{directory} still has the pod's cgroup in it");
            }
        }
    }

    /// <summary>The other side of host_memory_overhead: a guest that fills all its memory stays inside its host cgroup's
    /// limit. The guest kernel's OOM killer ends the hog (reported OOMKilled); QEMU and the pod's other container live on.</summary>
    [Fact]
    public async Task A_guest_that_fills_its_memory_stays_inside_the_host_limit()
    {
        var pod = await Fixture.RunPodAsync("guest-full", new LinuxContainerResources { MemoryLimitInBytes = 128L << 20 });
        bool removed = false;
        try
        {
            await Fixture.StartContainerAsync(pod, "main", ["sleep", "2147483647"]);
            // no container limit: the hog grows until the guest (384 MiB) has nothing left
            await Fixture.StartContainerAsync(pod, "hog", ["sh", "-c", "x=0123456789abcdef; while true; do x=$x$x; done"]);
            var hog = await UntilAsync(() => Fixture.ContainerStatusAsync(pod, "hog"),
                s => s.State == ContainerState.ContainerExited, $"the exit of {pod}/hog");
            var (limit, usage, qemuRss) = PodHostCgroupCheck.Memory(Fixture, pod);
            Output.WriteLine($"{pod}/hog: exit {hog.ExitCode}, reason {hog.Reason}; pod cgroup limit {limit >> 20} MiB, usage {usage >> 20} MiB, QEMU RSS {qemuRss >> 20} MiB");
            Assert.Equal(137, hog.ExitCode);
            Assert.Equal("OOMKilled", hog.Reason);
            Assert.Equal(ContainerState.ContainerRunning, (await Fixture.ContainerStatusAsync(pod, "main")).State);
            var alive = await Fixture.ExecAsync(pod, "main", "echo", "alive");
            Assert.True(alive.ExitCode == 0, alive.ToString());

            // sandboxctl doctor explains it by the container's id while the pod runs, and by the pod's id once removed
            var doctor = await DoctorAsync(pod.ContainerId("hog"));
            Assert.True(doctor.ExitCode == 1, doctor.ToString());
            Assert.StartsWith($"sandbox {pod.Id}: container {pod.ContainerId("hog")} was OOM-killed (no memory limit of its own", doctor.Stdout);
            await Fixture.StopAndRemovePodAsync(pod);
            removed = true;
            var afterRemoval = await DoctorAsync(pod.Id);
            Assert.True(afterRemoval.ExitCode == 1, afterRemoval.ToString());
            Assert.Contains("was OOM-killed", afterRemoval.Stdout.Split('\n')[0]);
            Assert.Contains("post-mortem record", afterRemoval.Stdout);
        }
        finally
        {
            if (!removed)
                await Fixture.StopAndRemovePodAsync(pod);
        }
    }

    /// <summary>The VM reaches its host cgroup's limit (lowered by hand here; a VMM whose overhead outgrows
    /// host_memory_overhead does the same): the host's OOM killer ends QEMU, and the kubelet sees the container
    /// OOMKilled with exit code 137, not a bare Error.</summary>
    [Fact]
    public async Task A_vm_killed_by_the_hosts_oom_killer_shows_its_containers_as_OOMKilled()
    {
        var pod = await Fixture.RunPodAsync("host-oom", new LinuxContainerResources { MemoryLimitInBytes = 512L << 20 });
        try
        {
            await Fixture.StartContainerAsync(pod, "main", ["sleep", "2147483647"]);
            var (_, usage, _) = PodHostCgroupCheck.Memory(Fixture, pod);
            PodHostCgroupCheck.SetMemoryLimit(Fixture, pod, usage + (24L << 20));
            // the guest has room (no container limit, a 768 MiB VM), the host cgroup does not
            await Fixture.StartContainerAsync(pod, "hog", ["sh", "-c", "x=0123456789abcdef; while true; do x=$x$x; done"]);
            var status = await UntilAsync(() => Fixture.ContainerStatusAsync(pod, "main"),
                s => s.State == ContainerState.ContainerExited, $"the exit of {pod}/main");
            Output.WriteLine($"{pod}/main: exit {status.ExitCode}, reason {status.Reason}, {status.Message}");
            Assert.Equal(137, status.ExitCode);
            Assert.Equal("OOMKilled", status.Reason);
        }
        finally
        {
            await Fixture.StopAndRemovePodAsync(pod);
        }
    }

    private Task<CommandResult> DoctorAsync(string id) =>
        ExternalCommand.RunAsync(Sandbox.Shim.Tests.SandboxctlBinary.Locate(), ["doctor", id, "--state-root", Fixture.StateRoot], TimeSpan.FromSeconds(60), stdin: "");
}
