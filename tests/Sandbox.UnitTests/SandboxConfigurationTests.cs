using Sandbox.Hypervisors;
using Sandbox.Runtime.Configuration;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.UnitTests;

public sealed class SandboxConfigurationTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sbcfg-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void Defaults_are_the_documented_ones()
    {
        var configuration = SandboxConfiguration.Default;

        Assert.Equal(SandboxConfiguration.BuiltInSource, configuration.Source);
        Assert.Null(configuration.Qemu.Path);
        Assert.Null(configuration.Qemu.Kernel);
        Assert.Equal(1, configuration.Qemu.DefaultVcpus);
        Assert.Equal(256, configuration.Qemu.DefaultMemoryMiB);
        Assert.Equal(Acceleration.Auto, configuration.Qemu.Accel);
        Assert.Equal(VsockMode.Auto, configuration.Qemu.Vsock);
        Assert.Equal(MachineType.Microvm, configuration.Qemu.MachineType);
        Assert.Equal(TimeSpan.FromSeconds(60), configuration.Agent.ReadyTimeout);
        Assert.Equal(TimeSpan.FromSeconds(60), configuration.Agent.RpcTimeout);
        Assert.Null(configuration.Runtime.StateRoot);
        Assert.False(configuration.Runtime.Debug);
    }

    [Fact]
    public void The_shipped_configuration_file_parses_to_the_defaults()
    {
        string shipped = Path.Combine(RepositoryRoot.Find(), "shim", "configuration.toml");

        var configuration = SandboxConfigurationParser.Parse(File.ReadAllText(shipped), shipped);

        Assert.Equal(SandboxConfiguration.Default with { Source = shipped }, configuration);
    }

    [Fact]
    public void Every_key_is_read()
    {
        const string toml = """
            [hypervisor.qemu]
            path = "/opt/qemu/bin/qemu-system-x86_64"
            kernel = "/g/vmlinux"
            initrd = "/g/initramfs.cpio"
            default_vcpus = 2
            default_memory = 512
            accel = "tcg"
            vsock = "hybrid"
            machine_type = "q35"
            tcg_translation_cache = 96
            clone_tcg_translation_cache = 80
            vhost_device_vsock_path = "/usr/local/bin/vhost-device-vsock"

            [agent]
            ready_timeout = 90
            rpc_timeout = 2.5

            [runtime]
            state_root = "/run/sb"
            debug = true
            """;

        var c = SandboxConfigurationParser.Parse(toml, "/etc/x.toml");

        Assert.Equal("/etc/x.toml", c.Source);
        Assert.Equal("/opt/qemu/bin/qemu-system-x86_64", c.Qemu.Path);
        Assert.Equal("/g/vmlinux", c.Qemu.Kernel);
        Assert.Equal("/g/initramfs.cpio", c.Qemu.Initrd);
        Assert.Equal(2, c.Qemu.DefaultVcpus);
        Assert.Equal(512, c.Qemu.DefaultMemoryMiB);
        Assert.Equal(Acceleration.Tcg, c.Qemu.Accel);
        Assert.Equal(VsockMode.Hybrid, c.Qemu.Vsock);
        Assert.Equal(MachineType.Q35, c.Qemu.MachineType);
        Assert.Equal(96, c.Qemu.TcgTranslationCacheMiB);
        Assert.Equal(80, c.Qemu.CloneTcgTranslationCacheMiB);
        Assert.Equal("/usr/local/bin/vhost-device-vsock", c.Qemu.VhostDeviceVsockPath);
        Assert.Equal(TimeSpan.FromSeconds(90), c.Agent.ReadyTimeout);
        Assert.Equal(TimeSpan.FromSeconds(2.5), c.Agent.RpcTimeout);
        Assert.Equal("/run/sb", c.Runtime.StateRoot);
        Assert.Equal("/run/sb", c.ResolveStateRoot());
        Assert.True(c.Runtime.Debug);

        var options = c.ToVmOptions("pod1", "host1");
        Assert.Equal("/g/vmlinux", options.Assets.KernelPath);
        Assert.Equal(2, options.Vcpus);
        Assert.Equal(512, options.MemoryMiB);
        Assert.Equal("/run/sb", options.StateRoot);
        Assert.Equal(TimeSpan.FromSeconds(90), options.AgentReadyTimeout);
        Assert.Equal("/opt/qemu/bin/qemu-system-x86_64", options.VmmPath);
    }

    [Fact]
    public void Absent_keys_and_empty_paths_keep_the_defaults_and_dotted_or_inline_forms_are_the_same_keys()
    {
        const string toml = """
            agent.rpc_timeout = 5
            hypervisor = { qemu = { default_vcpus = 2 } }
            [runtime]
            state_root = ""
            """;

        var c = SandboxConfigurationParser.Parse(toml, "f.toml");

        Assert.Equal(TimeSpan.FromSeconds(5), c.Agent.RpcTimeout);
        Assert.Equal(2, c.Qemu.DefaultVcpus);
        Assert.Null(c.Runtime.StateRoot);
        Assert.Equal(SandboxConfiguration.Default.Qemu.DefaultMemoryMiB, c.Qemu.DefaultMemoryMiB);
    }

    [Theory]
    [InlineData("", null, GuestKernel.Sandbox)]
    [InlineData("kernel = \"\"", null, GuestKernel.Sandbox)]
    [InlineData("kernel = \"sandbox\"", null, GuestKernel.Sandbox)]
    [InlineData("kernel = \"generic\"", null, GuestKernel.Generic)]
    [InlineData("kernel = \"/k/vmlinux\"", "/k/vmlinux", GuestKernel.Sandbox)]
    public void Kernel_names_ours_debians_generic_one_or_a_file(string line, string? path, GuestKernel kernel)
    {
        var c = SandboxConfigurationParser.Parse($"[hypervisor.qemu]\n{line}\n", "/c.toml");
        Assert.Equal(path, c.Qemu.Kernel);
        Assert.Equal(kernel, c.Qemu.GuestKernel);
    }

    [Fact]
    public void The_generic_kernel_comes_with_its_own_initramfs()
    {
        var generic = GuestAssets.InDirectory("/g", GuestKernel.Generic);
        Assert.Equal(("/g/vmlinux-generic", "/g/initramfs-generic.cpio"), (generic.KernelPath, generic.InitrdPath));
        var ours = GuestAssets.InDirectory("/g");
        Assert.Equal(("/g/vmlinux", "/g/initramfs.cpio"), (ours.KernelPath, ours.InitrdPath));
    }

    [Fact]
    public void Liveness_timeout_is_60_seconds_by_default_and_0_turns_the_check_off()
    {
        Assert.Equal(TimeSpan.FromSeconds(60), SandboxConfigurationParser.Parse("", "/c.toml").Agent.LivenessTimeout);
        Assert.Equal(TimeSpan.Zero, SandboxConfigurationParser.Parse("[agent]\nliveness_timeout = 0\n", "/c.toml").Agent.LivenessTimeout);
        Assert.Equal(TimeSpan.FromSeconds(20), SandboxConfigurationParser.Parse("[agent]\nliveness_timeout = 20\n", "/c.toml").Agent.LivenessTimeout);
    }

    [Fact]
    public void Idle_exit_is_60_seconds_by_default_and_0_means_never()
    {
        Assert.Equal(TimeSpan.FromSeconds(60), SandboxConfigurationParser.Parse("", "/c.toml").Runtime.IdleExit);
        Assert.Equal(TimeSpan.Zero, SandboxConfigurationParser.Parse("[runtime]\nidle_exit = 0\n", "/c.toml").Runtime.IdleExit);
        Assert.Equal(TimeSpan.FromSeconds(5), SandboxConfigurationParser.Parse("[runtime]\nidle_exit = 5\n", "/c.toml").Runtime.IdleExit);
    }

    [Fact]
    public void Boot_concurrency_is_the_host_cpu_count_by_default_and_0_means_no_limit()
    {
        var defaults = SandboxConfigurationParser.Parse("", "/c.toml");
        Assert.Equal(System.Environment.ProcessorCount, defaults.Runtime.BootConcurrency);
        Assert.Equal(System.Environment.ProcessorCount, defaults.ToVmOptions("p", null).BootSlots?.Count);
        Assert.Null(SandboxConfigurationParser.Parse("[runtime]\nboot_concurrency = 0\n", "/c.toml").ToVmOptions("p", null).BootSlots);
        Assert.Equal(3, SandboxConfigurationParser.Parse("[runtime]\nboot_concurrency = 3\n", "/c.toml").Runtime.BootConcurrency);
        var refused = Assert.Throws<SandboxConfigurationException>(() => SandboxConfigurationParser.Parse("[runtime]\nboot_concurrency = -1\n", "/c.toml"));
        Assert.Contains("runtime.boot_concurrency", refused.Message);
    }

    [Theory]
    [InlineData("[hypervisor.qemu]\naccel = \"fast\"", "/etc/sandbox/c.toml:2", "hypervisor.qemu.accel", "\"auto\", \"kvm\" or \"tcg\"")]
    [InlineData("[hypervisor.qemu]\n\ndefault_vcpus = 0", "/etc/sandbox/c.toml:3", "hypervisor.qemu.default_vcpus", "from 1 to 255")]
    [InlineData("[hypervisor.qemu]\ndefault_memory = \"1G\"", "/etc/sandbox/c.toml:2", "hypervisor.qemu.default_memory", "found a string")]
    [InlineData("[hypervisor.qemu]\nkernel = \"vmlinux\"", "/etc/sandbox/c.toml:2", "hypervisor.qemu.kernel", "not an absolute path, \"sandbox\" or \"generic\"")]
    [InlineData("[agent]\nrpc_timeout = -1", "/etc/sandbox/c.toml:2", "agent.rpc_timeout", "greater than 0")]
    [InlineData("[agent]\nliveness_timeout = -1", "/etc/sandbox/c.toml:2", "agent.liveness_timeout", "from 0 (never) to 3600")]
    [InlineData("[runtime]\ndebug = \"yes\"", "/etc/sandbox/c.toml:2", "runtime.debug", "true or false")]
    [InlineData("[hypervisor.qemu]\nvsock = \"vhost\"", "/etc/sandbox/c.toml:2", "hypervisor.qemu.vsock", "\"auto\", \"kernel\" or \"hybrid\"")]
    [InlineData("[hypervisor.qemu]\ntcg_translation_cache = 4", "/etc/sandbox/c.toml:2", "hypervisor.qemu.tcg_translation_cache", "from 8 to 2048")]
    [InlineData("[hypervisor.qemu]\nclone_tcg_translation_cache = 4096", "/etc/sandbox/c.toml:2", "hypervisor.qemu.clone_tcg_translation_cache", "from 8 to 2048")]
    [InlineData("[hypervisor.qemu]\nmachine_type = \"pc\"", "/etc/sandbox/c.toml:2", "hypervisor.qemu.machine_type", "\"microvm\" or \"q35\"")]
    public void Bad_values_name_the_file_line_key_and_what_is_accepted(string toml, string where, string key, string accepted)
    {
        var e = Assert.Throws<SandboxConfigurationException>(() => SandboxConfigurationParser.Parse(toml, "/etc/sandbox/c.toml"));

        Assert.StartsWith(where + ":", e.Message);
        Assert.Contains(key, e.Message);
        Assert.Contains(accepted, e.Message);
    }

    [Fact]
    public void Unknown_keys_are_errors_that_list_the_accepted_keys_of_their_table()
    {
        var e = Assert.Throws<SandboxConfigurationException>(() =>
            SandboxConfigurationParser.Parse("[hypervisor.qemu]\naccel = \"tcg\"\nmemory = 512\n", "/c.toml"));

        Assert.StartsWith("/c.toml:3:", e.Message);
        Assert.Contains("unknown key 'hypervisor.qemu.memory'", e.Message);
        Assert.Contains("default_memory", e.Message);
    }

    [Fact]
    public void Unknown_tables_are_errors()
    {
        var e = Assert.Throws<SandboxConfigurationException>(() =>
            SandboxConfigurationParser.Parse("[hypervisor.firecracker]\npath = \"/x\"\n", "/c.toml"));

        Assert.StartsWith("/c.toml:1:", e.Message);
        Assert.Contains("[hypervisor.firecracker]", e.Message);
        Assert.Contains("[hypervisor.qemu], [agent], [runtime]", e.Message);
    }

    [Fact]
    public void Invalid_toml_is_an_error_naming_the_file_and_line()
    {
        var e = Assert.Throws<SandboxConfigurationException>(() =>
            SandboxConfigurationParser.Parse("[agent]\nrpc_timeout = = 3\n", "/c.toml"));

        Assert.Contains("/c.toml is not valid TOML", e.Message);
        Assert.Contains("/c.toml:2", e.Message);
    }

    [Fact]
    public void The_runtime_options_path_wins_over_the_environment_and_the_system_file()
    {
        string fromOptions = Write("options.toml", "[hypervisor.qemu]\ndefault_vcpus = 3\n");
        string fromEnvironment = Write("env.toml", "[hypervisor.qemu]\ndefault_vcpus = 4\n");
        string system = Write("system.toml", "[hypervisor.qemu]\ndefault_vcpus = 5\n");
        var loader = new SandboxConfigurationLoader(Environment(fromEnvironment), system);

        Assert.Equal(3, loader.Load(fromOptions).Qemu.DefaultVcpus);
        Assert.Equal(fromOptions, loader.Load(fromOptions).Source);
        Assert.Equal(4, loader.Load(null).Qemu.DefaultVcpus);
        Assert.Equal(4, loader.Load("").Qemu.DefaultVcpus);
        Assert.Equal(5, new SandboxConfigurationLoader(Environment(null), system).Load(null).Qemu.DefaultVcpus);
        Assert.Equal(SandboxConfiguration.Default,
            new SandboxConfigurationLoader(Environment(null), Path.Combine(_directory, "absent.toml")).Load(null));
    }

    [Fact]
    public void A_named_file_that_does_not_exist_is_an_error_not_a_fall_back_to_defaults()
    {
        string missing = Path.Combine(_directory, "typo.toml");
        var loader = new SandboxConfigurationLoader(Environment(missing), Path.Combine(_directory, "absent.toml"));

        var fromEnvironment = Assert.Throws<SandboxConfigurationException>(() => loader.Load(null));
        Assert.Contains(missing, fromEnvironment.Message);
        Assert.Contains("$SANDBOX_CONFIG", fromEnvironment.Message);

        var fromOptions = Assert.Throws<SandboxConfigurationException>(() => loader.Load(missing));
        Assert.Contains("ConfigPath", fromOptions.Message);
    }

    [Fact]
    public void The_written_configuration_parses_back_to_the_same_values()
    {
        var configuration = SandboxConfigurationParser.Parse(
            "[hypervisor.qemu]\nkernel = \"/k/vmlinux\"\ninitrd = \"/k/initrd\"\naccel = \"tcg\"\nvsock = \"hybrid\"\n" +
            "[agent]\nrpc_timeout = 1.5\n[runtime]\nstate_root = \"/run/a \\\"b\\\"\"\ndebug = true\n", "/in.toml");

        string written = SandboxConfigurationWriter.ToToml(configuration, "sandbox pod1\nsecond line");
        var reread = SandboxConfigurationParser.Parse(written, "/out.toml");

        Assert.StartsWith("# sandbox pod1\n# second line\n# from: /in.toml\n", written);
        Assert.Equal(configuration with { Source = "/out.toml" }, reread);
    }

    private string Write(string name, string text)
    {
        string path = Path.Combine(_directory, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static Func<string, string?> Environment(string? sandboxConfig) =>
        name => name == SandboxConfigurationLoader.EnvironmentVariable ? sandboxConfig : null;
}
