using System.Diagnostics;
using System.Globalization;
using System.Text;
using Sandbox.Hypervisors;
using Sandbox.Runtime.Agent;

namespace Sandbox.Runtime.Templates;

/// <summary>
/// Makes a template: boots a VM as a template source (no sandbox in it yet: no hostname, share unmounted), waits
/// until its agent answers over the virtio-serial port, runs <see cref="TemplateWarmUp"/>'s throw-away container, waits
/// until the agent is idle again and the guest has reported its free pages, saves it, and moves the saved files into
/// place with a manifest. Built in a sibling directory and renamed, so a template directory is complete or absent.
/// </summary>
public static class TemplateBuilder
{
    /// <summary>The agent's console line when its virtio-serial port waits for the host (the agent's
    /// VirtioSerialListener.WaitingForHostMessage): after the readiness call has disconnected, the port is idle.</summary>
    public const string AgentWaitingLine = "waiting for the host to connect";

    /// <summary>How long the warm-up container may take from CreateContainer to its removal (~0.5 s under TCG).</summary>
    public static readonly TimeSpan WarmUpTimeout = TimeSpan.FromSeconds(30);

    public static async Task<VmTemplate> BuildAsync(VmTemplateRecipe recipe, VmTemplate target, IHypervisor hypervisor, string? jailerPath,
        TimeSpan agentReadyTimeout, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        string build = $"{target.Directory}.build-{Guid.NewGuid().ToString("N")[..8]}";
        string vmDirectory = Path.Combine(build, "vm");
        string share = Path.Combine(build, "share");
        Directory.CreateDirectory(vmDirectory);
        Directory.CreateDirectory(share);
        string id = "template-" + target.Key[..16];
        try
        {
            await hypervisor.PrepareAsync(new VmConfig
            {
                SandboxId = id,
                StateDirectory = vmDirectory,
                KernelPath = recipe.Assets.KernelPath,
                InitrdPath = recipe.Assets.InitrdPath,
                ExtraKernelParameters = recipe.ExtraKernelParameters,
                Vcpus = recipe.Vcpus,
                MemoryMiB = recipe.MemoryMiB,
                Acceleration = recipe.Acceleration,
                MachineType = recipe.MachineType,
                VmmPath = recipe.QemuPath,
                Debug = recipe.Debug,
                SharedDirectory = share,
                JailerPath = jailerPath,
                Template = new VmTemplateRole.Source(recipe.NetworkCards),
            }, cancellationToken);
            await hypervisor.StartAsync(cancellationToken);
            if (hypervisor.AgentEndpoint is not VirtioSerialEndpoint serial)
                throw new InvalidOperationException($"template {id}: the source VM has no virtio-serial agent endpoint ({hypervisor.AgentEndpoint})");
            int waitingBefore;
            double bootSeconds, warmUpSeconds;
            using (var agent = new AgentConnection(new VirtioSerialDialer(serial.SocketPath), id))
            {
                await agent.WaitUntilReadyAsync(agentReadyTimeout, cancellationToken);
                bootSeconds = clock.Elapsed.TotalSeconds;
                warmUpSeconds = (await TemplateWarmUp.RunAsync(agent.Client, WarmUpTimeout, id, cancellationToken)).TotalSeconds;
                waitingBefore = CountWaitingLines(hypervisor.ConsoleLogPath);
            }
            await WaitUntilIdleAsync(hypervisor.ConsoleLogPath, waitingBefore, id, cancellationToken);
            double settleSeconds = (await WaitForFreePageReportsAsync(Path.Combine(vmDirectory, VmTemplateRole.SourceMemoryFileName), cancellationToken)).TotalSeconds;
            string stateFile = Path.Combine(build, "state");
            string memory = await hypervisor.SaveAsTemplateAsync(stateFile, cancellationToken);
            File.Move(memory, Path.Combine(build, "memory"));
            var saved = new VmTemplate(build, target.Key);
            await File.WriteAllTextAsync(saved.ManifestFile, Manifest(recipe, saved, hypervisor, bootSeconds, warmUpSeconds, settleSeconds,
                clock.Elapsed.TotalSeconds), cancellationToken);
            Directory.Move(build, target.Directory);
            return target;
        }
        catch
        {
            await hypervisor.StopAsync(CancellationToken.None);
            TryDelete(build);
            throw;
        }
    }

    private static int CountWaitingLines(string consoleLog)
    {
        try
        {
            using var stream = new FileStream(consoleLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            int count = 0;
            while (reader.ReadLine() is { } line)
                if (line.Contains(AgentWaitingLine, StringComparison.Ordinal))
                    count++;
            return count;
        }
        catch (FileNotFoundException)
        {
            return 0;
        }
    }

    private static async Task WaitUntilIdleAsync(string consoleLog, int waitingBefore, string id, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (CountWaitingLines(consoleLog) <= waitingBefore)
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(20))
                throw new TimeoutException($"template {id}: the agent did not go back to waiting on its virtio-serial port within 20 s " +
                                           $"(no new \"{AgentWaitingLine}\" line in {consoleLog}). Last console lines:\n" +
                                           Hypervisors.Processes.ConsoleLogTail.Read(consoleLog));
            await Task.Delay(10, cancellationToken);
        }
    }

    /// <summary>Linux reports freed guest pages to the balloon 2 s after they were freed (PAGE_REPORTING_DELAY); in
    /// the source QEMU punches them out of the memory file.</summary>
    private static readonly TimeSpan FreePageReportingDelay = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Waits until the guest has reported what the boot and the warm-up freed: the memory file's allocation has not
    /// changed for half a second, at least <see cref="FreePageReportingDelay"/> and a margin after the warm-up (at
    /// most 10 s). A save before that left the report pending in the template, and every clone ran it after its
    /// restore, in the middle of its first container's create: ~50 ranges each, which QEMU 7.2 cannot discard from
    /// a clone's private mapping of the sealed memory (one "Failed to fallocate" line each in the clone's QEMU log).
    /// Reported in the source, the pages are holes in the template's memory instead.
    /// </summary>
    private static async Task<TimeSpan> WaitForFreePageReportsAsync(string memoryFile, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var minimum = FreePageReportingDelay + TimeSpan.FromMilliseconds(500);
        long last = AllocatedBytes(memoryFile);
        var stableSince = clock.Elapsed;
        while (clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(100, cancellationToken);
            long now = AllocatedBytes(memoryFile);
            if (now != last)
            {
                last = now;
                stableSince = clock.Elapsed;
            }
            else if (clock.Elapsed >= minimum && clock.Elapsed - stableSince >= TimeSpan.FromMilliseconds(500))
                break;
        }
        return clock.Elapsed;
    }

    /// <summary>The bytes <paramref name="file"/> occupies (st_blocks: a punched hole frees its blocks).</summary>
    private static unsafe long AllocatedBytes(string file)
    {
        Tmds.Linux.stat status;
        if (Native.LibCStrings.stat(file, &status) != 0)
            throw new IOException($"cannot stat the template source's memory {file}: {Native.Errno.DescribeLast()}");
        return (long)status.st_blocks * 512;
    }

    private static string Manifest(VmTemplateRecipe recipe, VmTemplate saved, IHypervisor hypervisor, double bootSeconds, double warmUpSeconds,
        double settleSeconds, double totalSeconds)
    {
        var text = new StringBuilder();
        void Line(string name, object value) => text.Append(name).Append(' ').Append(Convert.ToString(value, CultureInfo.InvariantCulture)).Append('\n');
        text.Append("# a VM template (Sandbox.Runtime.Templates.TemplateBuilder): device state in state, guest memory in memory\n");
        Line("key", saved.Key);
        Line("recipe", VmTemplateRecipe.Version);
        Line("kernel", VmTemplateRecipe.FileIdentity(recipe.Assets.KernelPath));
        Line("initrd", VmTemplateRecipe.FileIdentity(recipe.Assets.InitrdPath));
        Line("qemu", VmTemplateRecipe.FileIdentity(recipe.QemuPath));
        Line("vcpus", recipe.Vcpus);
        Line("memory_mib", recipe.MemoryMiB);
        Line("acceleration", hypervisor.Capabilities.Acceleration);
        Line("machine", recipe.MachineType);
        Line("kernel_params", recipe.ExtraKernelParameters);
        Line("network_cards", recipe.NetworkCards);
        Line("created", DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture));
        Line("boot_seconds", bootSeconds.ToString("F2", CultureInfo.InvariantCulture));
        Line("warm_up_seconds", warmUpSeconds.ToString("F2", CultureInfo.InvariantCulture));
        Line("free_page_report_seconds", settleSeconds.ToString("F2", CultureInfo.InvariantCulture));
        Line("build_seconds", totalSeconds.ToString("F2", CultureInfo.InvariantCulture));
        Line("state_bytes", new FileInfo(saved.StateFile).Length);
        return text.ToString();
    }

    private static void TryDelete(string directory)
    {
        try { Directory.Delete(directory, recursive: true); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
