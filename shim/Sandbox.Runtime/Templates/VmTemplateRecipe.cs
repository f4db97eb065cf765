using System.Globalization;
using System.IO.Hashing;
using System.Text;
using Sandbox.Hypervisors;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Runtime.Templates;

/// <summary>
/// What a template depends on: the guest image, the VMM binary and the VM's shape and boot settings. A clone's VM
/// must be exactly its template's, so any change gives another <see cref="Key"/> and so another template; a template
/// whose key no longer matches any recipe is simply not used again.
/// </summary>
public sealed record VmTemplateRecipe
{
    /// <summary>Bumped when what a template holds changes meaning (the device set, the agent channel; 3: the source VM
    /// has run <see cref="TemplateWarmUp"/>'s container before its save; 4: and has reported its free pages).</summary>
    public const int Version = 4;

    public required GuestAssets Assets { get; init; }
    public required string QemuPath { get; init; }
    public int Vcpus { get; init; } = 1;
    public int MemoryMiB { get; init; } = 256;
    public Acceleration Acceleration { get; init; } = Acceleration.Auto;
    public MachineType MachineType { get; init; } = MachineType.Microvm;
    public string ExtraKernelParameters { get; init; } = "";
    public bool Debug { get; init; }
    /// <summary>Network cards (each clone puts its taps behind them; the agent gives them the pod's addresses).</summary>
    public int NetworkCards { get; init; }

    /// <summary>The template's identity: XxHash128 (32 hex digits) of every input above, files by path, size and
    /// modification time. Not a cryptographic hash, and it needs none: the inputs are the host's own configuration and
    /// files, and a collision could only restore a clone into a VM of another shape, which fails and boots cold. SHA256
    /// was used before: on Linux .NET computes it with OpenSSL, so every clone's shim daemon loaded libcrypto and libssl
    /// for this one hash, ~6 ms of its start before QEMU's and ~3 MiB of its resident memory for the pod's life.</summary>
    public string Key
    {
        get
        {
            var text = new StringBuilder();
            void Line(string name, object value) => text.Append(name).Append('=').Append(Convert.ToString(value, CultureInfo.InvariantCulture)).Append('\n');
            Line("recipe", Version);
            Line("kernel", FileIdentity(Assets.KernelPath));
            Line("initrd", FileIdentity(Assets.InitrdPath));
            Line("qemu", FileIdentity(QemuPath));
            Line("vcpus", Vcpus);
            Line("memory_mib", MemoryMiB);
            Line("acceleration", Acceleration);
            Line("machine", MachineType);
            Line("kernel_params", ExtraKernelParameters);
            Line("debug", Debug);
            Line("network_cards", NetworkCards);
            return Convert.ToHexStringLower(XxHash128.Hash(Encoding.UTF8.GetBytes(text.ToString())));
        }
    }

    /// <summary>"path size mtime" of a file (its target when a symlink), or "path missing".</summary>
    public static string FileIdentity(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target)
            info = target;
        return info.Exists
            ? string.Create(CultureInfo.InvariantCulture, $"{info.FullName} {info.Length} {info.LastWriteTimeUtc.Ticks}")
            : $"{info.FullName} missing";
    }
}
