using System.CommandLine;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Ctl;

/// <summary>The `--state-root` option that every command reading state directories takes.</summary>
internal static class StateRootOption
{
    public static Option<string?> Create() => new("--state-root")
    {
        Description = $"Parent of the state directories (default: $SANDBOX_STATE_ROOT, else {SandboxStateDirectory.DefaultRoot})",
    };
}
