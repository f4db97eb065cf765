using Sandbox.Hypervisors;
using Sandbox.Hypervisors.HostDetection;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Runtime.Host;

/// <summary>One line of `sandboxctl check`: what was checked, whether it is fine, and why.</summary>
/// <param name="Required">When false, a failure is a warning: the runtime still works.</param>
public sealed record HostCheckItem(string Name, bool Ok, bool Required, string Detail);

/// <summary>Everything `sandboxctl check` found. <see cref="CanRunSandboxes"/> is false when a required item failed.</summary>
public sealed record HostCheckReport(IReadOnlyList<HostCheckItem> Items, string Acceleration, string VsockMode)
{
    public bool CanRunSandboxes => Items.All(i => i.Ok || !i.Required);
}

/// <summary>
/// Answers "can this host run sandboxes, and how?" with the same probes the QEMU adapter uses to decide
/// (KVM, vsock, TSC, QEMU), whether sandbox-jailer can confine them, plus the guest image.
/// </summary>
public sealed class HostCheck(string? qemuPath = null, string? guestDirectory = null, string? jailerPath = null)
{
    public async Task<HostCheckReport> RunAsync(CancellationToken cancellationToken)
    {
        var items = new List<HostCheckItem>();

        var kvm = new KvmProbe().Probe();
        var acceleration = kvm.Usable ? Acceleration.Kvm : Acceleration.Tcg;
        items.Add(new HostCheckItem("kvm", kvm.Usable, Required: false,
            (kvm.Usable ? "usable: VMs run with KVM. " : "not usable: VMs run under TCG (software emulation, slower). ") + kvm.Reason));

        var vsock = new VsockProbe().Probe();
        items.Add(new HostCheckItem("vsock", vsock.Usable, Required: true, vsock.Reason));

        if (acceleration == Acceleration.Tcg)
        {
            var tsc = new TscFrequency().Detect();
            items.Add(new HostCheckItem("tsc", tsc.KHz is not null, Required: true,
                tsc.KHz is { } khz ? $"{khz} kHz from {tsc.Detail} (passed to TCG guests as tsc_early_khz)" : tsc.Detail));
        }

        var qemu = await new QemuProbe().ProbeAsync(qemuPath, cancellationToken);
        items.Add(new HostCheckItem("qemu", qemu.Usable, Required: true,
            qemu.Usable ? $"{qemu.Path}: {qemu.VersionLine}" : qemu.Reason));

        var jail = await JailProbe.ProbeAsync(Configuration.JailerLocation.Resolve(jailerPath), cancellationToken);
        items.Add(new HostCheckItem("confinement", jail.Usable, Required: true, jail.Usable
            ? "QEMU and vhost-device-vsock run jailed: " + jail.Reason
            : jail.Reason + " (with [hypervisor.qemu] confine = false sandboxes run, unconfined)"));

        items.AddRange(CheckGuestImage());

        return new HostCheckReport(items, acceleration.ToString().ToLowerInvariant(),
            vsock.Mode?.ToString().ToLowerInvariant() ?? "none");
    }

    private IEnumerable<HostCheckItem> CheckGuestImage()
    {
        GuestAssets? assets = null;
        string? locateError = null;
        try
        {
            assets = guestDirectory is null ? GuestAssets.Locate() : GuestAssets.InDirectory(guestDirectory);
        }
        catch (FileNotFoundException e)
        {
            locateError = e.Message;
        }
        if (assets is null)
        {
            yield return new HostCheckItem("guest-image", false, Required: true, locateError!);
            yield break;
        }
        var missing = new[] { assets.KernelPath, assets.InitrdPath }.Where(p => !File.Exists(p)).ToArray();
        if (missing.Length > 0)
        {
            yield return new HostCheckItem("guest-image", false, Required: true, "missing: " + string.Join(", ", missing));
            yield break;
        }
        var releaseFile = Path.Combine(assets.Directory, "kernel-release");
        var release = File.Exists(releaseFile) ? File.ReadAllText(releaseFile).Trim() : "unknown release";
        yield return new HostCheckItem("guest-image", true, Required: true,
            $"kernel {assets.KernelPath} ({release}), initramfs {assets.InitrdPath} ({new FileInfo(assets.InitrdPath).Length / (1024 * 1024)} MiB)");

        // The fallback ([hypervisor.qemu] kernel = "generic"): Debian's kernel with the initramfs that carries its modules.
        var generic = GuestAssets.InDirectory(assets.Directory, GuestKernel.Generic);
        var genericRelease = Path.Combine(assets.Directory, "kernel-release-generic");
        yield return File.Exists(generic.KernelPath) && File.Exists(generic.InitrdPath)
            ? new HostCheckItem("guest-image-generic", true, Required: false,
                $"fallback kernel {generic.KernelPath} ({(File.Exists(genericRelease) ? File.ReadAllText(genericRelease).Trim() : "unknown release")}), initramfs {generic.InitrdPath}")
            : new HostCheckItem("guest-image-generic", false, Required: false,
                $"no fallback kernel ({generic.KernelPath} and {generic.InitrdPath}): kernel = \"generic\" cannot be used; rebuild the image with `make image`");

        var manifest = GuestImageManifest.TryRead(Path.Combine(assets.Directory, "manifest.txt"));
        yield return manifest is null
            ? new HostCheckItem("guest-crun", false, Required: true,
                $"{Path.Combine(assets.Directory, "manifest.txt")} is missing or unreadable: rebuild the image with `make image`")
            : new HostCheckItem("guest-crun", manifest.ContainsFile("usr/bin/crun"), Required: true,
                manifest.ContainsFile("usr/bin/crun") ? "crun is in the initramfs" + manifest.VersionOf("crun")
                                                       : "the initramfs has no usr/bin/crun: rebuild the image with `make image`");
        yield return manifest is not null && manifest.ContainsFile("sbin/sandbox-agent")
            ? new HostCheckItem("guest-agent", true, Required: true, "sandbox-agent is in the initramfs")
            : new HostCheckItem("guest-agent", false, Required: true, "the initramfs has no sbin/sandbox-agent: rebuild the image with `make image`");
    }
}
