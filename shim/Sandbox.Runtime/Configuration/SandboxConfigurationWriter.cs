using System.Globalization;
using System.Text;
using Sandbox.Hypervisors;

namespace Sandbox.Runtime.Configuration;

/// <summary>
/// Writes the configuration in effect as TOML, every key with its resolved value (defaults included), so that an
/// operator sees in a sandbox's state directory exactly what that sandbox was started with. The output parses back
/// to the same values.
/// </summary>
public static class SandboxConfigurationWriter
{
    public const string FileName = "configuration.toml";

    public static string ToToml(SandboxConfiguration configuration, string? header = null)
    {
        string kernel, initrd;
        try
        {
            var assets = configuration.ResolveGuestAssets();
            (kernel, initrd) = (assets.KernelPath, assets.InitrdPath);
        }
        catch (FileNotFoundException)
        {
            (kernel, initrd) = (configuration.Qemu.Kernel ?? "", configuration.Qemu.Initrd ?? "");
        }

        var text = new StringBuilder();
        if (header is not null)
        {
            foreach (var line in header.Split('\n'))
                text.Append("# ").Append(line).Append('\n');
        }
        text.Append("# from: ").Append(configuration.Source).Append("\n\n");
        text.Append("[hypervisor.qemu]\n");
        Line(text, "path", Quote(configuration.Qemu.Path ?? ""));
        Line(text, "kernel", Quote(kernel));
        Line(text, "initrd", Quote(initrd));
        Line(text, "default_vcpus", configuration.Qemu.DefaultVcpus.ToString(CultureInfo.InvariantCulture));
        Line(text, "default_memory", configuration.Qemu.DefaultMemoryMiB.ToString(CultureInfo.InvariantCulture));
        Line(text, "tcg_translation_cache", configuration.Qemu.TcgTranslationCacheMiB.ToString(CultureInfo.InvariantCulture));
        Line(text, "clone_tcg_translation_cache", configuration.Qemu.CloneTcgTranslationCacheMiB.ToString(CultureInfo.InvariantCulture));
        Line(text, "accel", Quote(configuration.Qemu.Accel switch
        {
            Acceleration.Kvm => "kvm",
            Acceleration.Tcg => "tcg",
            _ => "auto",
        }));
        Line(text, "vsock", Quote(configuration.Qemu.Vsock switch
        {
            VsockMode.Kernel => "kernel",
            VsockMode.Hybrid => "hybrid",
            _ => "auto",
        }));
        Line(text, "machine_type", Quote(configuration.Qemu.MachineType == MachineType.Q35 ? "q35" : "microvm"));
        Line(text, "vhost_device_vsock_path", Quote(configuration.Qemu.VhostDeviceVsockPath ?? ""));
        Line(text, "host_memory_overhead", configuration.Qemu.HostMemoryOverheadMiB.ToString(CultureInfo.InvariantCulture));
        Line(text, "kernel_params", Quote(configuration.Qemu.KernelParams));
        Line(text, "confine", configuration.Qemu.Confine ? "true" : "false");
        Line(text, "jailer_path", Quote(configuration.Qemu.JailerPath ?? ""));
        Line(text, "share_allow_setid", configuration.Qemu.ShareAllowSetId ? "true" : "false");
        Line(text, "template", configuration.Qemu.Template ? "true" : "false");
        text.Append("\n[agent]\n");
        Line(text, "ready_timeout", Seconds(configuration.Agent.ReadyTimeout));
        Line(text, "rpc_timeout", Seconds(configuration.Agent.RpcTimeout));
        Line(text, "liveness_timeout", Seconds(configuration.Agent.LivenessTimeout));
        Line(text, "debug_console", configuration.Agent.DebugConsole ? "true" : "false");
        text.Append("\n[runtime]\n");
        Line(text, "state_root", Quote(configuration.ResolveStateRoot()));
        Line(text, "debug", configuration.Runtime.Debug ? "true" : "false");
        Line(text, "sandbox_cgroup", configuration.Runtime.SandboxCgroup ? "true" : "false");
        Line(text, "idle_exit", Seconds(configuration.Runtime.IdleExit));
        Line(text, "boot_concurrency", configuration.Runtime.BootConcurrency.ToString(CultureInfo.InvariantCulture));
        Line(text, "post_mortem_records", configuration.Runtime.PostMortemRecords.ToString(CultureInfo.InvariantCulture));
        return text.ToString();
    }

    private static void Line(StringBuilder text, string key, string value) => text.Append(key).Append(" = ").Append(value).Append('\n');

    private static string Seconds(TimeSpan value) => value.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);

    /// <summary>A TOML basic string.</summary>
    private static string Quote(string value)
    {
        var text = new StringBuilder("\"");
        foreach (char c in value)
        {
            switch (c)
            {
                case '"': text.Append("\\\""); break;
                case '\\': text.Append("\\\\"); break;
                case '\n': text.Append("\\n"); break;
                case '\t': text.Append("\\t"); break;
                default:
                    if (char.IsControl(c))
                        text.Append("\\u").Append(((int)c).ToString("X4", CultureInfo.InvariantCulture));
                    else
                        text.Append(c);
                    break;
            }
        }
        return text.Append('"').ToString();
    }
}
