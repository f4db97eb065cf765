using Sandbox.Runtime.Sandboxes;
using Sandbox.Runtime.Templates;

namespace Sandbox.UnitTests;

public sealed class VmTemplateRecipeTests
{
    private static VmTemplateRecipe Recipe(string directory) => new()
    {
        Assets = new GuestAssets(Path.Combine(directory, "vmlinux"), Path.Combine(directory, "initramfs.cpio")),
        QemuPath = Path.Combine(directory, "qemu"),
    };

    [Fact]
    public void The_key_is_32_hex_digits_the_same_for_the_same_inputs_and_another_when_one_changes()
    {
        string directory = Directory.CreateTempSubdirectory("recipe-").FullName;
        try
        {
            foreach (string file in new[] { "vmlinux", "initramfs.cpio", "qemu" })
                File.WriteAllText(Path.Combine(directory, file), file);
            var recipe = Recipe(directory);

            Assert.Matches("^[0-9a-f]{32}$", recipe.Key);
            Assert.Equal(recipe.Key, Recipe(directory).Key);
            Assert.NotEqual(recipe.Key, (recipe with { Vcpus = 2 }).Key);
            Assert.NotEqual(recipe.Key, (recipe with { ExtraKernelParameters = "loglevel=7" }).Key);
            string before = recipe.Key;
            File.AppendAllText(Path.Combine(directory, "initramfs.cpio"), "rebuilt"); // another size: another image
            Assert.NotEqual(before, recipe.Key);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
