using System.Diagnostics;
using Sandbox.Hypervisors.HostDetection;

namespace Sandbox.Hypervisors.Tests;

/// <summary>
/// The guest kernel and initramfs the VM tests boot. Kernel: $SANDBOX_TEST_VMLINUX, else build/guest/vmlinux (made by
/// images/build-image.sh). Initramfs: a tiny one built here from the host's static busybox (its /init powers off, or
/// with `tinyinit=hold` on the kernel command line prints a line and waits), so that the adapter is tested
/// independently of the guest image; the real image (build/guest/initramfs.cpio) is booted by its own test.
/// </summary>
public static class GuestImage
{
    public const string TinyInitUpLine = "TINY-INIT up";
    public const string TinyInitHoldingLine = "TINY-INIT holding";

    private static readonly Lazy<Task<string>> TinyInitramfs = new(BuildTinyInitramfsAsync);

    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    public static string? KernelPath =>
        Environment.GetEnvironmentVariable("SANDBOX_TEST_VMLINUX") is { Length: > 0 } fromEnvironment
            ? fromEnvironment
            : File.Exists(BuiltKernel) ? BuiltKernel : null;

    public static string BuiltKernel => Path.Combine(RepositoryRoot, "build", "guest", "vmlinux");
    public static string BuiltInitramfs => Path.Combine(RepositoryRoot, "build", "guest", "initramfs.cpio");

    /// <summary>Why VM tests cannot run here, or null when they can.</summary>
    public static string? MissingPrerequisite()
    {
        if (KernelPath is not { } kernel)
            return $"no guest kernel: set SANDBOX_TEST_VMLINUX to a PVH vmlinux, or build {BuiltKernel} with images/build-image.sh";
        if (!File.Exists(kernel))
            return $"SANDBOX_TEST_VMLINUX={kernel} does not exist";
        if (ExecutableSearch.Find(QemuProbe.BinaryName) is null)
            return $"{QemuProbe.BinaryName} is not on PATH";
        if (!new VsockProbe().Probe().Usable)
            return "no vsock: " + new VsockProbe().Probe().Reason;
        if (!File.Exists("/bin/busybox") || ExecutableSearch.Find("cpio") is null)
            return "the tiny test initramfs needs /bin/busybox (busybox-static) and cpio";
        return null;
    }

    public static Task<string> TinyInitramfsAsync() => TinyInitramfs.Value;

    private static async Task<string> BuildTinyInitramfsAsync()
    {
        var root = Directory.CreateTempSubdirectory("hvt-initramfs-").FullName;
        Directory.CreateDirectory(Path.Combine(root, "bin"));
        File.Copy("/bin/busybox", Path.Combine(root, "bin", "busybox"));
        // The kernel hands unknown name=value parameters to init as environment variables: $tinyinit.
        var init = Path.Combine(root, "init");
        await File.WriteAllTextAsync(init, $"""
            #!/bin/busybox sh
            echo "{TinyInitUpLine}"
            if [ "$tinyinit" = hold ]; then
                echo "{TinyInitHoldingLine}"
                while :; do /bin/busybox sleep 3600; done
            fi
            /bin/busybox poweroff -f

            """);
        File.SetUnixFileMode(init, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var cpio = Path.Combine(root, "..", Path.GetFileName(root) + ".cpio");
        var startInfo = new ProcessStartInfo("/bin/sh", ["-c", $"find . | cpio -o -H newc --quiet > '{cpio}'"])
        {
            WorkingDirectory = root,
            RedirectStandardError = true,
        };
        using var process = Process.Start(startInfo)!;
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"building the tiny initramfs failed: {stderr}");
        Directory.Delete(root, recursive: true);
        var path = Path.GetFullPath(cpio);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => File.Delete(path);
        return path;
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Sandbox.sln")))
                return dir.FullName;
        }
        return "/work/main";
    }
}

/// <summary>
/// Whether a developer asked to skip the VM tests on a machine without QEMU (SANDBOX_SKIP_VM_TESTS=1). Never set by
/// `make test` or CI: there a missing prerequisite must fail the tests, not hide behind a skip.
/// </summary>
internal static class VmTestGate
{
    public static string? SkipReason(string? missing) =>
        missing is not null && Environment.GetEnvironmentVariable("SANDBOX_SKIP_VM_TESTS") == "1"
            ? missing + " (skipped because SANDBOX_SKIP_VM_TESTS=1)"
            : null;
}

/// <summary>A fact that boots a VM. It fails when a prerequisite is missing, unless SANDBOX_SKIP_VM_TESTS=1.</summary>
public sealed class VmFactAttribute : FactAttribute
{
    public VmFactAttribute() => Skip = VmTestGate.SkipReason(GuestImage.MissingPrerequisite());
}

/// <summary>A theory that boots VMs. It fails when a prerequisite is missing, unless SANDBOX_SKIP_VM_TESTS=1.</summary>
public sealed class VmTheoryAttribute : TheoryAttribute
{
    public VmTheoryAttribute() => Skip = VmTestGate.SkipReason(GuestImage.MissingPrerequisite());
}

/// <summary>A fact that boots the real guest image (build/guest, made by `make image`, which `make test` runs first).</summary>
public sealed class BuiltImageFactAttribute : FactAttribute
{
    public BuiltImageFactAttribute() => Skip = VmTestGate.SkipReason(GuestImage.MissingPrerequisite() ??
        (!File.Exists(GuestImage.BuiltKernel) || !File.Exists(GuestImage.BuiltInitramfs)
            ? $"the guest image is not built ({GuestImage.BuiltKernel}, {GuestImage.BuiltInitramfs}): run make image"
            : null));
}
