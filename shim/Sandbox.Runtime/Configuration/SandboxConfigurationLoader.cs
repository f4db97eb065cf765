namespace Sandbox.Runtime.Configuration;

/// <summary>
/// Finds the configuration file and reads it. The first of these wins:
/// 1. the runtime options' ConfigPath (containerd's <c>options.ConfigPath</c>, or <c>ctr --runtime-config-path</c>);
/// 2. <c>$SANDBOX_CONFIG</c>;
/// 3. <c>/etc/sandbox/configuration.toml</c> (what `make install` lays down), if it exists;
/// 4. the built-in defaults.
/// A file named by 1 or 2 must exist: a typo there is an error, never a silent fall-back to defaults.
/// </summary>
public sealed class SandboxConfigurationLoader
{
    public const string EnvironmentVariable = "SANDBOX_CONFIG";
    public const string SystemPath = "/etc/sandbox/configuration.toml";

    private readonly Func<string, string?> _environment;
    private readonly string _systemPath;

    public SandboxConfigurationLoader()
        : this(Environment.GetEnvironmentVariable, SystemPath)
    {
    }

    /// <summary>For tests: another environment and system file.</summary>
    public SandboxConfigurationLoader(Func<string, string?> environment, string systemPath)
    {
        _environment = environment;
        _systemPath = systemPath;
    }

    /// <summary>The path that would be read (null = built-in defaults), and why.</summary>
    public (string? Path, string Reason) Find(string? runtimeOptionsConfigPath)
    {
        if (!string.IsNullOrEmpty(runtimeOptionsConfigPath))
            return (runtimeOptionsConfigPath, "the runtime options' ConfigPath");
        if (_environment(EnvironmentVariable) is { Length: > 0 } fromEnvironment)
            return (fromEnvironment, $"${EnvironmentVariable}");
        if (File.Exists(_systemPath))
            return (_systemPath, "the system configuration");
        return (null, "no configuration file");
    }

    public SandboxConfiguration Load(string? runtimeOptionsConfigPath)
    {
        var (path, reason) = Find(runtimeOptionsConfigPath);
        if (path is null)
            return SandboxConfiguration.Default;
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SandboxConfigurationException(
                $"cannot read the sandbox configuration {path} (named by {reason}): {e.Message}", e);
        }
        return SandboxConfigurationParser.Parse(text, path);
    }
}
