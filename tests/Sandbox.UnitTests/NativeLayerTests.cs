using System.Text.RegularExpressions;

namespace Sandbox.UnitTests;

/// <summary>The native layer stays one module: every libc declaration of this repository is in agent/Sandbox.Native,
/// everything else comes from Tmds.LibC.</summary>
public class NativeLayerTests
{
    private static readonly Regex Declaration = new(@"\b(DllImport|LibraryImport)(Attribute)?\s*\(", RegexOptions.Compiled);

    [Fact]
    public void No_project_but_Sandbox_Native_declares_a_native_function()
    {
        string root = RepositoryRoot.Find();
        var offenders = new List<string>();
        int inNativeModule = 0;
        foreach (string top in new[] { "agent", "shim", "hypervisor-adapters", "tests" })
        {
            foreach (string file in Directory.EnumerateFiles(Path.Combine(root, top), "*.cs", SearchOption.AllDirectories))
            {
                string relative = Path.GetRelativePath(root, file).Replace('\\', '/');
                if (relative.Contains("/obj/") || relative.Contains("/bin/") || relative.EndsWith("NativeLayerTests.cs"))
                    continue;
                int count = Declaration.Matches(File.ReadAllText(file)).Count;
                if (count == 0)
                    continue;
                if (relative.StartsWith("agent/Sandbox.Native/", StringComparison.Ordinal))
                    inNativeModule += count;
                else
                    offenders.Add($"{relative}: {count}");
            }
        }
        Assert.True(offenders.Count == 0,
            "native declarations outside agent/Sandbox.Native (use Tmds.LibC, or add it to LibCSupplement with why): " + string.Join(", ", offenders));
        Assert.InRange(inNativeModule, 1, 30); // the supplement is small; a long list means Tmds.LibC went unused
    }
}
