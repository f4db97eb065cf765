using System.Diagnostics;
using Sandbox.Hypervisors.Qemu;
using Xunit.Abstractions;

namespace Sandbox.Hypervisors.Tests;

/// <summary>Boots real VMs (TCG on hosts without usable KVM). Timings are printed, never asserted.</summary>
public sealed class QemuAdapterVmTests : IDisposable
{
    /// <summary>Only a guard against a hung test; boots take seconds.</summary>
    private static readonly TimeSpan Guard = TimeSpan.FromMinutes(3);

    private readonly ITestOutputHelper _output;
    private readonly TempDirectory _dir = new();

    public QemuAdapterVmTests(ITestOutputHelper output)
    {
        _output = output;
    }

    public void Dispose() => _dir.Dispose();

    private string StateDirectory => Path.Combine(_dir.Path, "state");

    private async Task<VmConfig> TinyGuestAsync(string id, bool hold = false, MachineType machine = MachineType.Microvm) => new()
    {
        SandboxId = id,
        StateDirectory = StateDirectory,
        KernelPath = GuestImage.KernelPath!,
        InitrdPath = await GuestImage.TinyInitramfsAsync(),
        MachineType = machine,
        ExtraKernelParameters = hold ? "tinyinit=hold" : "",
    };

    /// <summary>Host processes whose command line mentions <paramref name="text"/> (the state directory).</summary>
    private static List<string> ProcessesMentioning(string text)
    {
        var found = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
                continue;
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (cmdline.Contains(text))
                    found.Add($"{pid}: {cmdline}");
            }
            catch (IOException)
            {
                // Exited meanwhile.
            }
        }
        return found;
    }

    private void AssertNothingLeft(QemuStateFiles files)
    {
        Assert.Empty(ProcessesMentioning(files.Directory));
        foreach (var path in files.Ephemeral)
            Assert.False(File.Exists(path), $"{path} was left behind");
        // The record of the sandbox stays.
        Assert.True(File.Exists(files.ConsoleLog));
        Assert.True(File.Exists(files.QemuCommandLine));
    }

    private static async Task WaitForConsoleLineAsync(string consoleLog, string line, IHypervisor vm)
    {
        using var guard = new CancellationTokenSource(Guard);
        while (!(File.Exists(consoleLog) && (await File.ReadAllTextAsync(consoleLog, guard.Token)).Contains(line)))
        {
            Assert.False(vm.WaitForExitAsync(CancellationToken.None).IsCompleted, $"the VM exited before printing '{line}'");
            await Task.Delay(50, guard.Token);
        }
    }

    [VmTheory]
    [InlineData(MachineType.Microvm)]
    [InlineData(MachineType.Q35)]
    public async Task Boots_and_powers_off_by_itself(MachineType machine)
    {
        var share = Directory.CreateDirectory(Path.Combine(_dir.Path, "share")).FullName;
        await using var vm = new QemuAdapter();
        var config = await TinyGuestAsync($"boot-{machine}".ToLowerInvariant(), machine: machine) with { SharedDirectory = share };
        await vm.PrepareAsync(config, CancellationToken.None);
        var files = vm.Plan.Spec.Files;

        var watch = Stopwatch.StartNew();
        await vm.StartAsync(CancellationToken.None).WaitAsync(Guard);
        var started = watch.Elapsed;
        Assert.NotNull(vm.Pid);
        var waiters = new[] { vm.WaitForExitAsync(CancellationToken.None), vm.WaitForExitAsync(CancellationToken.None) };
        var exit = await waiters[0].WaitAsync(Guard);
        var exited = watch.Elapsed;
        Assert.Same(exit, await waiters[1]);
        Assert.Same(exit, await vm.WaitForExitAsync(CancellationToken.None));

        Assert.Equal(0, exit.ExitCode);
        Assert.False(exit.StoppedByHost);
        Assert.Contains(GuestImage.TinyInitUpLine, await File.ReadAllTextAsync(vm.ConsoleLogPath));
        Assert.Contains("-fsdev", await File.ReadAllTextAsync(files.QemuCommandLine));
        _output.WriteLine($"{machine} {vm.Capabilities.Acceleration} {vm.Capabilities.VsockMode}: StartAsync returned after {started.TotalMilliseconds:F0} ms, " +
                          $"QEMU exited (guest poweroff) after {exited.TotalMilliseconds:F0} ms");
        _output.WriteLine(vm.Capabilities.Reason ?? "");
        _output.WriteLine(await File.ReadAllTextAsync(files.QemuCommandLine));
        _output.WriteLine(await File.ReadAllTextAsync(files.VsockDaemonCommandLine));

        await vm.StopAsync(CancellationToken.None);
        AssertNothingLeft(files);
    }

    /// <summary>Issue 11: QEMU runs under its seccomp filter (mode 2) with no_new_privs, read from /proc as the kernel
    /// enforces it, while the guest runs.</summary>
    [VmFact]
    public async Task Qemu_runs_under_a_seccomp_filter_with_no_new_privileges()
    {
        await using var vm = new QemuAdapter();
        await vm.PrepareAsync(await TinyGuestAsync("seccomp", hold: true), CancellationToken.None);
        await vm.StartAsync(CancellationToken.None).WaitAsync(Guard);
        await WaitForConsoleLineAsync(vm.ConsoleLogPath, GuestImage.TinyInitHoldingLine, vm);

        var status = File.ReadAllLines($"/proc/{vm.Pid!.Value}/status");
        Assert.Contains(status, l => l.StartsWith("Seccomp:") && l.EndsWith("\t2"));
        Assert.Contains(status, l => l.StartsWith("NoNewPrivs:") && l.EndsWith("\t1"));

        await vm.StopAsync(CancellationToken.None).WaitAsync(Guard);
    }

    [VmFact]
    public async Task Stop_of_a_running_vm_leaves_no_process_and_no_socket()
    {
        await using var vm = new QemuAdapter();
        await vm.PrepareAsync(await TinyGuestAsync("stop", hold: true), CancellationToken.None);
        var files = vm.Plan.Spec.Files;
        await vm.StartAsync(CancellationToken.None).WaitAsync(Guard);
        await WaitForConsoleLineAsync(vm.ConsoleLogPath, GuestImage.TinyInitHoldingLine, vm);

        var qemuPid = vm.Pid!.Value;
        var daemonPid = vm.VsockDaemonPid;
        Assert.True(Directory.Exists($"/proc/{qemuPid}"));
        if (vm.Capabilities.VsockMode == VsockMode.Hybrid)
        {
            Assert.NotNull(daemonPid);
            Assert.True(File.Exists(files.VhostUserVsockSocket));
            Assert.True(File.Exists(files.HybridVsockSocket));
        }
        Assert.True(File.Exists(files.QmpSocket));

        var watch = Stopwatch.StartNew();
        await vm.StopAsync(CancellationToken.None).WaitAsync(Guard);
        _output.WriteLine($"StopAsync took {watch.Elapsed.TotalMilliseconds:F0} ms");

        var exit = await vm.WaitForExitAsync(CancellationToken.None).WaitAsync(Guard);
        Assert.True(exit.StoppedByHost);
        Assert.Equal("", exit.Diagnostics);
        Assert.False(Directory.Exists($"/proc/{qemuPid}"));
        if (daemonPid is not null)
            Assert.False(Directory.Exists($"/proc/{daemonPid}"));
        AssertNothingLeft(files);

        await vm.StopAsync(CancellationToken.None); // idempotent
    }

    [VmFact]
    public async Task Releasing_the_boot_images_takes_them_out_of_qemu_and_the_guest_runs_on()
    {
        // A private copy of the kernel: pages that another VM of this test run maps too stay resident (the kernel
        // never pages out memory another process shares), which would make this test depend on its neighbours.
        var kernelCopy = Path.Combine(_dir.Path, "vmlinux-release");
        File.Copy(GuestImage.KernelPath!, kernelCopy);
        await using var vm = new QemuAdapter();
        await vm.PrepareAsync(await TinyGuestAsync("release", hold: true) with { KernelPath = kernelCopy }, CancellationToken.None);
        await vm.StartAsync(CancellationToken.None).WaitAsync(Guard);
        await WaitForConsoleLineAsync(vm.ConsoleLogPath, GuestImage.TinyInitHoldingLine, vm);
        var kernel = vm.Plan.Spec.KernelPath;
        long residentBefore = ResidentKiBOfMappings(vm.Pid!.Value, kernel);
        Assert.True(residentBefore > 1024, $"QEMU should hold the kernel image resident after boot, has {residentBefore} KiB");

        var description = await vm.ReleaseBootImagesAsync(CancellationToken.None).WaitAsync(Guard);
        _output.WriteLine(description);

        long residentAfter = ResidentKiBOfMappings(vm.Pid!.Value, kernel);
        Assert.True(residentAfter < residentBefore / 4, $"{description}; kernel mapping still {residentAfter} KiB resident (was {residentBefore})");
        Assert.Contains("-> ", description);
        // The guest does not need QEMU's copies: it keeps running and the VM stops as usual.
        await Task.Delay(500);
        Assert.False(vm.WaitForExitAsync(CancellationToken.None).IsCompleted, "QEMU exited after its boot images were paged out");
        await vm.StopAsync(CancellationToken.None).WaitAsync(Guard);
        // After the stop there is nothing to release, and saying so is not an error.
        _output.WriteLine(await vm.ReleaseBootImagesAsync(CancellationToken.None).WaitAsync(Guard));
    }

    /// <summary>Rss of a process's mappings of <paramref name="file"/>, read independently of the code under test.</summary>
    private static long ResidentKiBOfMappings(int pid, string file)
    {
        long total = 0;
        bool inFile = false;
        foreach (var line in File.ReadLines($"/proc/{pid}/smaps"))
        {
            if (char.IsAsciiHexDigit(line[0]) && line.Contains('-') && !line.EndsWith(" kB", StringComparison.Ordinal))
                inFile = line.EndsWith(" " + file, StringComparison.Ordinal);
            else if (inFile && line.StartsWith("Rss:", StringComparison.Ordinal))
                total += long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        }
        return total;
    }

    [VmFact]
    public async Task Cancelling_the_start_token_after_start_leaves_the_vm_running()
    {
        await using var vm = new QemuAdapter();
        await vm.PrepareAsync(await TinyGuestAsync("cancel", hold: true), CancellationToken.None);
        using var startup = new CancellationTokenSource();
        await vm.StartAsync(startup.Token).WaitAsync(Guard);
        await startup.CancelAsync();

        await WaitForConsoleLineAsync(vm.ConsoleLogPath, GuestImage.TinyInitHoldingLine, vm);
        await using (var qmp = await QmpClient.ConnectAsync(vm.Plan.Spec.Files.QmpSocket, CancellationToken.None).WaitAsync(Guard))
            Assert.Equal("running", await qmp.QueryStatusAsync(CancellationToken.None).WaitAsync(Guard));
        Assert.False(vm.WaitForExitAsync(CancellationToken.None).IsCompleted);

        await vm.DisposeAsync();
        Assert.True((await vm.WaitForExitAsync(CancellationToken.None)).StoppedByHost);
        AssertNothingLeft(vm.Plan.Spec.Files);
    }

    [VmFact]
    public async Task A_kernel_qemu_cannot_load_fails_the_start_with_qemus_message()
    {
        var notAKernel = _dir.File("vmlinux-broken", "this is not a kernel\n");
        await using var vm = new QemuAdapter();
        await vm.PrepareAsync(await TinyGuestAsync("broken") with { KernelPath = notAKernel }, CancellationToken.None);

        var error = await Assert.ThrowsAsync<HypervisorException>(() => vm.StartAsync(CancellationToken.None).WaitAsync(Guard));
        _output.WriteLine(error.Message);
        Assert.Equal("broken", error.SandboxId);
        Assert.StartsWith("sandbox broken: QEMU failed to start.", error.Message);
        Assert.Matches(@"QEMU said:\n  qemu[^\n]*: \S", error.Message); // QEMU's own stderr ("qemu: linux kernel too old ...")
        Assert.Contains(vm.ConsoleLogPath, error.Message);
        Assert.Contains(vm.Plan.Spec.Files.QemuCommandLine, error.Message);

        var exit = await vm.WaitForExitAsync(CancellationToken.None).WaitAsync(Guard);
        Assert.NotEqual(0, exit.ExitCode);
        Assert.False(exit.StoppedByHost);
        Assert.Matches(@"QEMU said:\n  qemu[^\n]*: \S", exit.Diagnostics);
        AssertNothingLeft(vm.Plan.Spec.Files);
    }

    [Fact]
    public async Task A_missing_kernel_is_named_before_anything_runs()
    {
        var missing = Path.Combine(_dir.Path, "no-such-dir", "vmlinux");
        await using var vm = new QemuAdapter();
        var config = new VmConfig
        {
            SandboxId = "nokernel",
            StateDirectory = StateDirectory,
            KernelPath = missing,
            InitrdPath = _dir.File("initramfs.cpio", ""),
        };
        var error = await Assert.ThrowsAsync<HypervisorException>(() => vm.PrepareAsync(config, CancellationToken.None));
        Assert.Contains(missing, error.Message);
        Assert.StartsWith("sandbox nokernel:", error.Message);
        Assert.False(Directory.Exists(StateDirectory));
    }

    [BuiltImageFact]
    public async Task The_built_guest_image_boots_to_floor_init_and_powers_off()
    {
        await using var vm = new QemuAdapter();
        await vm.PrepareAsync(new VmConfig
        {
            SandboxId = "floor",
            StateDirectory = StateDirectory,
            KernelPath = GuestImage.BuiltKernel,
            InitrdPath = GuestImage.BuiltInitramfs,
            ExtraKernelParameters = "rdinit=/sbin/floor-init",
        }, CancellationToken.None);
        var watch = Stopwatch.StartNew();
        await vm.StartAsync(CancellationToken.None).WaitAsync(Guard);
        var started = watch.Elapsed;
        var exit = await vm.WaitForExitAsync(CancellationToken.None).WaitAsync(Guard);
        _output.WriteLine($"built image, floor-init: StartAsync {started.TotalMilliseconds:F0} ms, exit after {watch.Elapsed.TotalMilliseconds:F0} ms");
        Assert.Equal(0, exit.ExitCode);
        Assert.False(exit.StoppedByHost);
        await vm.StopAsync(CancellationToken.None);
        AssertNothingLeft(vm.Plan.Spec.Files);
    }
}
